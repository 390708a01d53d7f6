"""What a generator cannot see for itself in openapi/openapi.json (run by scripts/clients.sh):

1. a value documented as one of a few values is an enum, not a string with the values in
   prose ("`a`, `b` or `c`", "One of A, B, C");
2. every operation declares the credential it needs, and the error responses the server's
   layers answer for what the operation is (the rules of `error_statuses` in
   crates/api/src/openapi.rs), and none that it cannot answer.

Usage: python3 scripts/check-openapi.py openapi/openapi.json
"""

import json
import re
import sys

document = json.load(open(sys.argv[1]))
problems = []

# Values are words (`at_risk`, `ticket.message`, `*`); an id prefix (`evt_…`) or a pattern
# (`scheme://host`) is not one.
LISTED = re.compile(r"`[\w.*]+`(?:, `[\w.*]+`)* or `[\w.*]+`|^one of ", re.I)


def is_plain_string(schema):
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    closed = {"enum", "const", "$ref", "format", "oneOf", "anyOf", "allOf"}
    return "string" in kinds and not (closed & schema.keys())


def check_values(schema, where, description=None):
    """Walks a schema: a string (or an array of strings) whose description lists values."""
    if not isinstance(schema, dict):
        return
    description = description or schema.get("description", "")
    items = schema.get("items")
    target = items if isinstance(items, dict) else schema
    if description and LISTED.search(description) and is_plain_string(target):
        first = description.splitlines()[0]
        problems.append(f"{where}: lists its values ({first}) but is a plain string")
    for name, sub in (schema.get("properties") or {}).items():
        check_values(sub, f"{where}.{name}")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            check_values(sub, f"{where}.{key}[{i}]")
    if isinstance(items, dict):
        check_values(items, f"{where}[]")


for name, schema in document["components"]["schemas"].items():
    check_values(schema, name)
for name, parameter in document["components"].get("parameters", {}).items():
    check_values(parameter.get("schema", {}), f"parameter {name}", parameter.get("description"))

# Outside /v1 and unauthenticated: the health probes. (The document itself and /docs are
# served too, but are not operations of the document.)
PUBLIC = {"/healthz", "/readyz"}
METHODS = ("get", "post", "put", "patch", "delete")
count = 0
for path, item in document["paths"].items():
    for method in METHODS:
        operation = item.get(method)
        if not operation:
            continue
        count += 1
        name = f"{method.upper()} {path} ({operation.get('operationId')})"
        statuses = set(operation["responses"])
        parameters = operation.get("parameters", []) + item.get("parameters", [])
        for parameter in parameters:
            if "$ref" not in parameter:
                check_values(
                    parameter.get("schema", {}),
                    f"{name} parameter {parameter['name']}",
                    parameter.get("description"),
                )
        headers = {p.get("$ref", "").rsplit("/", 1)[-1] for p in parameters}
        has_body = "requestBody" in operation
        has_path_id = "{" in path
        idempotent = "IdempotencyKey" in headers
        if_match = "IfMatch" in headers
        consistency = "ConsistencyToken" in headers

        # Every route: a body over the limit (declared), a target or headers over theirs,
        # an undocumented query parameter, and the unexpected.
        required = {"413", "414", "422", "431", "500"}
        if path in PUBLIC:
            if operation.get("security"):
                problems.append(f"{name}: a public route with a security requirement")
        else:
            if not operation.get("security"):
                problems.append(f"{name}: no security requirement")
            # No or a bad credential; the other kind of credential or a browser origin
            # not allowed; rate limits; the database.
            required |= {"401", "403", "429", "503"}
        if has_body:
            required |= {"400", "415", "422"}  # malformed JSON is 400, a wrong shape 422
        if idempotent:
            required |= {"400", "409", "422"}  # a malformed key; a key in use; reused
        if consistency:
            required.add("400")  # a Tenure-Consistency-Token that is not one
        if has_path_id:
            required.add("404")
        if if_match:
            required.add("412")
        for status in sorted(required - statuses):
            problems.append(f"{name}: does not declare {status}")

        cannot = {
            "400": not has_body and not idempotent and not consistency,
            "401": path in PUBLIC,
            "403": path in PUBLIC,
            "404": not has_path_id,
            "412": not if_match,
            "415": not has_body,
        }
        for status, impossible in cannot.items():
            if impossible and status in statuses:
                problems.append(f"{name}: declares {status}, which it cannot answer")

        for status, response in operation["responses"].items():
            if status[0] in "45" and "$ref" not in response:
                if "application/problem+json" not in response.get("content", {}):
                    problems.append(f"{name}: {status} is not a problem+json document")

for problem in problems:
    print(problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{count} operations: closed sets are enums, security and error responses declared")
