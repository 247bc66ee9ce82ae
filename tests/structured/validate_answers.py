"""Validates constrained answers with jsonschema (pinned in scripts/requirements.txt), an implementation
independent of the engine's grammar: every complete answer must parse as JSON and be valid against
its schema. Run by test_random_weight_validity with the project's venv python.

    validate_answers.py ANSWERS_JSON     ({"answers": [{"schema": {...}, "text": "...", "complete": bool}]})

Prints one line per invalid answer and a summary; exits 1 when any complete answer is invalid.
"""
import json
import sys

import jsonschema


def main() -> int:
    answers = json.load(open(sys.argv[1], encoding="utf-8"))["answers"]
    invalid = 0
    complete = [a for a in answers if a["complete"]]
    for a in complete:
        try:
            jsonschema.validate(json.loads(a["text"]), a["schema"], cls=jsonschema.Draft202012Validator)
        except (json.JSONDecodeError, jsonschema.ValidationError) as e:
            invalid += 1
            print(f"invalid: {a['text']!r} against {json.dumps(a['schema'])}: {e}")
    print(f"validated {len(complete)} complete answers of {len(answers)}: {invalid} invalid")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
