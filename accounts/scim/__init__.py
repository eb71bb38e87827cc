"""The SCIM 2.0 server (`/scim/v2/`, RFC 7643/7644) that identity providers push people through.

scim2-server does the protocol (routing, validation with scim2-models, PATCH and PUT applied to the
resource, ETags, filters parsed, error bodies); Portal owns the storage: `storage.PortalStorage` maps
Users onto `accounts.Employee` and Groups onto `accounts.Role`, writes through the services and
starts the lifecycle through `accounts.hooks`. `schemas` says which attributes Portal keeps,
`filters` turns a SCIM filter into one database query, `views` is the one Django view (bearer token,
size and rate bounds, the Okta/Entra quirks, one transaction per request).
"""
