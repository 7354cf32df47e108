"""Validates mandates against the AP2 schemas in docs/schemas/ap2 with the `jsonschema` package
(Debian's python3-jsonschema), draft 2020-12: an implementation of JSON Schema nobody here wrote.

    mandate_schema_check.py SCHEMA_DIR CASES.json

CASES.json is a list of {"name", "schema": "open" | "closed", "document", "valid": bool}. Prints
one line per case and exits non-zero if any case is not as expected.
"""
import json
import sys
from pathlib import Path

import jsonschema

schema_dir = Path(sys.argv[1])
defs = json.loads((schema_dir / "defs.json").read_text())
schemas = {
    "open": json.loads((schema_dir / "open_payment_mandate.json").read_text()),
    "closed": json.loads((schema_dir / "payment_mandate.json").read_text()),
}
failed = 0
for case in json.loads(Path(sys.argv[2]).read_text()):
    schema = schemas[case["schema"]]
    jsonschema.Draft202012Validator.check_schema(schema)
    resolver = jsonschema.RefResolver.from_schema(schema, store={defs["$id"]: defs})
    validator = jsonschema.Draft202012Validator(schema, resolver=resolver)
    errors = sorted(validator.iter_errors(case["document"]), key=lambda e: list(e.path))
    valid = not errors
    ok = valid == case["valid"]
    failed += not ok
    why = "; ".join(e.message[:100] for e in errors[:2])
    print(f"{'ok  ' if ok else 'FAIL'} {case['name']}: {'valid' if valid else 'invalid: ' + why}")
sys.exit(1 if failed else 0)
