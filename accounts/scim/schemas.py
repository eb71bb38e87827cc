"""What Portal's SCIM server publishes: the attributes it keeps, its resource types and its configuration.

The schemas are RFC 7643's, cut down to the attributes Portal maps (an attribute outside them is
refused with a SCIM error, never stored half). `provider()` builds the scim2-models description once.
"""

import copy
import functools

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    External,
    Filter,
    Patch,
    Reference,
    ResourceType,
    Schema,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)
from scim2_server.utils import load_json_resource

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MAX_RESULTS = 200  # a page holds at most this many resources, whatever `count` asks

# schema → attribute → changes to RFC 7643's definition (None: keep as defined). Sub-attributes are
# listed under "subAttributes"; anything not listed is not published.
KEPT = {
    USER_SCHEMA: {
        "userName": {"description": "The person's work email (unique, case-insensitive)."},
        "name": {
            "required": True,
            "subAttributes": {"givenName": {"required": True}, "familyName": {"required": True}},
        },
        "displayName": {"mutability": "readOnly", "description": "Preferred (or first) name and last name."},
        "nickName": {"description": "The preferred first name."},
        "title": None,
        "active": {
            "required": True,
            "description": "false starts a leaver run with an immediate cut-off; a person created inactive "
            "is a pre-hire whose join run starts when they are activated.",
        },
        "emails": {
            "subAttributes": {
                "value": None,
                "type": {"canonicalValues": ["work", "home", "other"]},
                "primary": None,
            }
        },
        "groups": {
            "description": "The person's role in Portal (at most one).",
            "subAttributes": {"value": None, "$ref": {"referenceTypes": ["Group"]}, "display": None},
        },
    },
    ENTERPRISE_SCHEMA: {
        "employeeNumber": {"required": True, "uniqueness": "server"},
        "costCenter": {"mutability": "readOnly", "description": "The cost center of the person's department."},
        "department": {"description": "The department's name (or code); a new name creates the department."},
        "manager": {"subAttributes": {"value": {"required": True}, "$ref": None}},
    },
    GROUP_SCHEMA: {
        "displayName": {"description": "The name of a role in Portal."},
        "members": {
            "description": "The people in the role; adding one moves them into it (mover run).",
            "subAttributes": {
                "value": None,
                "$ref": {"referenceTypes": ["User"]},
                "type": {"canonicalValues": ["User"]},
            },
        },
    },
}


def _cut(attributes: list[dict], kept: dict) -> list[dict]:
    out = []
    for attribute in attributes:
        if attribute["name"] not in kept:
            continue
        changes = dict(kept[attribute["name"]] or {})
        attribute = copy.deepcopy(attribute)
        subs = changes.pop("subAttributes", None)
        attribute.update(changes)
        if subs is not None:
            attribute["subAttributes"] = _cut(attribute.get("subAttributes", []), subs)
        out.append(attribute)
    return out


def published_schemas() -> list[dict]:
    """The three schemas as JSON, cut down to what Portal keeps."""
    schemas = []
    for schema in load_json_resource("default-schemas.json"):
        if schema["id"] in KEPT:
            schema = {**schema, "attributes": _cut(schema["attributes"], KEPT[schema["id"]])}
            schemas.append(schema)
    return schemas


BEARER = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="Bearer token",
    description="The token shown once when IT creates the SCIM connection in Portal's admin.",
    spec_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc6750"),
    primary=True,
)


@functools.cache
def provider() -> ScimProvider:
    """The description of Portal's SCIM service (schemas, resource types, ServiceProviderConfig)."""
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[BEARER],
    )
    resource_types = [
        ResourceType.model_validate(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "A person in Portal (accounts.Employee)",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": True}],
            }
        ),
        ResourceType.model_validate(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "A role in Portal (accounts.Role): birthright access and hardware kit",
                "schema": GROUP_SCHEMA,
            }
        ),
    ]
    schemas = [Schema.model_validate(s) for s in published_schemas()]
    return ScimProvider.from_discovery(schemas, resource_types, config=config)
