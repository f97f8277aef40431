"""Emulator of Adobe Campaign Standard: IMS, gateway checks, REST resources, email events and exports."""
