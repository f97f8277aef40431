"""Everything about Adobe Campaign Standard and Adobe I/O: IMS auth, REST client, events journal, exports."""
