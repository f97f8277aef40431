"""§8 Metadata discovery and §9 items 2-4: service document, $metadata, WhoAmI, EntityDefinitions."""

from __future__ import annotations

import httpx
import pytest

from .conftest import BASE


@pytest.mark.anyio
async def test_service_document_lists_entity_sets(api: httpx.AsyncClient) -> None:
    response = await api.get(BASE)
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    sets = {item["name"]: item for item in response.json()["value"]}
    assert sets["contacts"] == {"name": "contacts", "kind": "EntitySet", "url": "contacts"}
    assert {"accounts", "leads", "tasks", "new_vehicles", "activitypointers"} <= set(sets)


@pytest.mark.anyio
async def test_metadata_csdl_annotates_change_tracked_sets(api: httpx.AsyncClient) -> None:
    xml = (await api.get(f"{BASE}$metadata")).text
    assert 'Namespace="Microsoft.Dynamics.CRM" Alias="mscrm"' in xml
    assert '<EntitySet Name="contacts" EntityType="Microsoft.Dynamics.CRM.contact">' in xml
    assert "Org.OData.Capabilities.V1.ChangeTracking" in xml
    assert '<NavigationProperty Name="parentcustomerid_account" Type="mscrm.account">' in xml
    assert '<Property Name="_parentcustomerid_value" Type="Edm.Guid" />' in xml


@pytest.mark.anyio
async def test_who_am_i_answers_get_and_refuses_post(api: httpx.AsyncClient) -> None:
    body = (await api.get(f"{BASE}WhoAmI()")).json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert {"BusinessUnitId", "UserId", "OrganizationId"} <= set(body)
    refused = await api.post(f"{BASE}WhoAmI")
    assert refused.status_code == 404
    assert refused.json()["error"]["message"].startswith("No HTTP resource was found that matches the request URI")


@pytest.mark.anyio
async def test_entity_definition_of_contact(api: httpx.AsyncClient) -> None:
    url = (
        f"{BASE}EntityDefinitions(LogicalName='contact')"
        "?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ChangeTrackingEnabled,IsActivity"
    )
    body = (await api.get(url)).json()
    assert body["EntitySetName"] == "contacts"
    assert body["PrimaryIdAttribute"] == "contactid"
    assert body["PrimaryNameAttribute"] == "fullname"
    assert body["ChangeTrackingEnabled"] is True
    assert body["IsActivity"] is False
    assert "MetadataId" in body


@pytest.mark.anyio
async def test_entity_definitions_filter_on_change_tracking(api: httpx.AsyncClient) -> None:
    body = (await api.get(f"{BASE}EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled eq true")).json()
    assert {"contact", "account", "task", "new_vehicle"} <= {item["LogicalName"] for item in body["value"]}


@pytest.mark.anyio
async def test_attributes_carry_types_and_option_set_labels(api: httpx.AsyncClient) -> None:
    attributes = (await api.get(f"{BASE}EntityDefinitions(LogicalName='contact')/Attributes")).json()["value"]
    types = {a["LogicalName"]: a["AttributeType"] for a in attributes}
    assert types["gendercode"] == "Picklist"
    assert types["donotbulkemail"] == "Boolean"
    assert types["parentcustomerid"] == "Lookup"
    url = (
        f"{BASE}EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='gendercode')"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet"
    )
    options = (await api.get(url)).json()["OptionSet"]["Options"]
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in options] == [(1, "Male"), (2, "Female")]
    picklist_filter = "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'"
    picklists = (
        f"{BASE}EntityDefinitions(LogicalName='contact')"
        f"?$select=LogicalName&$expand=Attributes($select=LogicalName;$filter={picklist_filter})"
    )
    expanded = (await api.get(picklists)).json()["Attributes"]
    assert [a["LogicalName"] for a in expanded] == ["gendercode"]


@pytest.mark.anyio
async def test_keys_and_relationships_of_the_custom_vehicle_table(api: httpx.AsyncClient) -> None:
    body = (await api.get(f"{BASE}EntityDefinitions(LogicalName='new_vehicle')?$expand=Keys")).json()
    assert [(k["KeyAttributes"], k["EntityKeyIndexStatus"]) for k in body["Keys"]] == [(["new_vin"], "Active")]
    url = f"{BASE}EntityDefinitions(LogicalName='new_vehicle')/ManyToOneRelationships"
    relations = (await api.get(url)).json()["value"]
    assert {(r["ReferencedEntity"], r["ReferencingEntityNavigationPropertyName"]) for r in relations} == {
        ("contact", "new_contactid")
    }


@pytest.mark.anyio
async def test_metadata_writes_create_a_custom_activity_with_a_column_and_a_key(api: httpx.AsyncClient) -> None:
    table = {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": "new_EmailOpen",
        "IsActivity": True,
        "HasActivities": False,
        "OwnershipType": "UserOwned",
        "DisplayName": {"LocalizedLabels": [{"Label": "Email open", "LanguageCode": 1033}]},
        "Attributes": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "SchemaName": "Subject",
                "IsPrimaryName": True,
                "MaxLength": 200,
            }
        ],
    }
    created = await api.post(f"{BASE}EntityDefinitions", json=table)
    assert created.status_code == 204
    assert "EntityDefinitions(" in created.headers["OData-EntityId"]
    column = {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "new_EventKey",
        "MaxLength": 100,
    }
    entity = f"{BASE}EntityDefinitions(LogicalName='new_emailopen')"
    assert (await api.post(f"{entity}/Attributes", json=column)).status_code == 204
    key = {"SchemaName": "new_emailopen_eventkey", "KeyAttributes": ["new_eventkey"]}
    assert (await api.post(f"{entity}/Keys", json=key)).status_code == 204
    definition = (await api.get(f"{entity}?$select=EntitySetName,PrimaryIdAttribute,IsActivity")).json()
    assert (definition["EntitySetName"], definition["PrimaryIdAttribute"], definition["IsActivity"]) == (
        "new_emailopens",
        "activityid",
        True,
    )
    contact = await api.post(f"{BASE}contacts", json={"lastname": "Timeline"})
    contact_url = contact.headers["OData-EntityId"]
    contact_id = contact_url.rsplit("(", 1)[1].rstrip(")")
    row = {
        "subject": "Opened newsletter",
        "regardingobjectid_contact_new_emailopen@odata.bind": f"/contacts({contact_id})",
    }
    upsert = await api.patch(f"{BASE}new_emailopens(new_eventkey='msg-1.open')", json=row)
    assert upsert.status_code == 204
    timeline = (await api.get(f"{BASE}new_emailopens?$filter=_regardingobjectid_value eq {contact_id}")).json()
    assert [(r["subject"], r["new_eventkey"]) for r in timeline["value"]] == [("Opened newsletter", "msg-1.open")]
    task = {"subject": "Call back", "regardingobjectid_contact_task@odata.bind": f"/contacts({contact_id})"}
    assert (await api.post(f"{BASE}tasks", json=task)).status_code == 204
    url = f"{BASE}activitypointers?$select=subject,activitytypecode&$filter=_regardingobjectid_value eq {contact_id}"
    timeline = (await api.get(url)).json()["value"]
    assert sorted((a["activitytypecode"], a["subject"]) for a in timeline) == [
        ("new_emailopen", "Opened newsletter"),
        ("task", "Call back"),
    ]
    assert (await api.post(f"{BASE}activitypointers", json={"subject": "x"})).status_code == 405
