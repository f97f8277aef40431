"""Everything about the Dataverse (Dynamics 365) Web API: auth, OData codecs, the client."""
