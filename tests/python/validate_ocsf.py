"""Validates OCSF records against the OCSF 1.8.0 JSON schema shipped by the
ocsf-json-schema package, with the profiles each record declares (metadata.profiles).
Records that carry modelwatch's model identity in `unmapped.ai_model` have it checked
against the 1.8.0 `ai_model` object schema too.

    validate_ocsf.py FILE...   (JSON lines)

Prints one JSON summary: records validated per class, and every error. Exit 1 on any
error.
"""

import json
import sys


def main() -> int:
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.8.0"))
    validators = {}

    def validator(kind, name, profiles):
        key = (kind, name, tuple(profiles))
        if key not in validators:
            if kind == "class":
                schema = ocsf.get_class_schema(class_name=name, profiles=list(profiles))
            else:
                schema = ocsf.get_object_schema(object_name=name, profiles=list(profiles))
            Draft202012Validator.check_schema(schema)
            validators[key] = Draft202012Validator(schema)
        return validators[key]

    summary = {"validated": 0, "classes": {}, "ai_models": 0, "errors": []}
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                where = f"{path}:{number}"
                try:
                    class_name = ocsf.lookup_class_name_from_uid(record["class_uid"])
                except (KeyError, ValueError) as error:
                    summary["errors"].append(f"{where}: no OCSF class: {error}")
                    continue
                profiles = sorted(record.get("metadata", {}).get("profiles", []))
                for error in validator("class", class_name, profiles).iter_errors(record):
                    summary["errors"].append(f"{where} ({class_name}): {error.json_path}: {error.message}")
                model = record.get("unmapped", {}).get("ai_model")
                if model is not None:
                    summary["ai_models"] += 1
                    for error in validator("object", "ai_model", profiles).iter_errors(model):
                        summary["errors"].append(f"{where} (ai_model): {error.json_path}: {error.message}")
                summary["validated"] += 1
                kind = record.get("unmapped", {}).get("kind", "?")
                summary["classes"].setdefault(f"{record['class_uid']} {class_name}", []).append(kind)
    for key in summary["classes"]:
        summary["classes"][key] = sorted(set(summary["classes"][key]))
    print(json.dumps(summary, indent=1))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
