"""Look-up-table IOC: drive one PV from another through an interpolated (x, y) table.

``lut.table`` holds the pure logic (no EPICS); ``lut.ioc`` the devioc model and app.
"""
