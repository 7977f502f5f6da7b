"""Checks `hutong topics plan --format strimzi` offline: every YAML document (parsed by PyYAML,
not by Hutong) is valid against the KafkaTopic v1beta2 schema beside this file, and the
resources name exactly the topics of the JSON plan with its partitions, replicas and config.

usage: check_strimzi.py STRIMZI.yaml PLAN.json
"""
import json
import pathlib
import sys

import jsonschema
import yaml

strimzi_file, plan_file = sys.argv[1], sys.argv[2]
schema = json.loads((pathlib.Path(__file__).parent / "strimzi_kafkatopic_v1beta2.schema.json").read_text())
validator = jsonschema.Draft202012Validator(schema)
docs = [d for d in yaml.safe_load_all(pathlib.Path(strimzi_file).read_text()) if d is not None]
plan = {t["name"]: t for t in json.loads(pathlib.Path(plan_file).read_text())["topics"]}

errors = []
names = set()
for doc in docs:
    for e in validator.iter_errors(doc):
        errors.append(f"{doc.get('metadata', {}).get('name')}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    spec = doc.get("spec", {})
    topic = spec.get("topicName", doc["metadata"]["name"])
    if doc["metadata"]["name"] in names:
        errors.append(f"two resources named {doc['metadata']['name']}")
    names.add(doc["metadata"]["name"])
    want = plan.pop(topic, None)
    if want is None:
        errors.append(f"{topic}: not a topic of the plan")
        continue
    got = (spec.get("partitions"), spec.get("replicas"), {k: str(v) for k, v in spec.get("config", {}).items()})
    if got != (want["partitions"], want["replication-factor"], want["config"]):
        errors.append(f"{topic}: {got} differs from the plan")
errors += [f"{t}: in the plan, no KafkaTopic" for t in plan]
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"{len(docs)} KafkaTopic resources valid")
