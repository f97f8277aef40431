"""Emulators of Dataverse and Adobe Campaign Standard: sandboxes for users, ground truth for tests."""
