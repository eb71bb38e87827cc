"""The write path of people and access, one module per part: employees, entitlements recorded by hand,
provisioning through connectors, access requests, their approval steps, delegations and periodic
notices. Views, admin, imports, tasks and the higher apps import the sub-module that owns a write.
"""
