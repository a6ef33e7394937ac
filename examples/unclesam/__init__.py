"""unclesam: a devioc bridge that serves a DCS (Blu-Ice) sample-mounting robot as EPICS PVs."""
