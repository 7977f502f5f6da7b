"""A Confluent client against Hutong's schema registry.

Usage: registry_client.py REGISTRY_URL DATASCHEMA_URL
Run by tests/tests/e2e.rs against a running gateway; exits non-zero on any
disagreement. Uses confluent-kafka's SchemaRegistryClient, the client Kafka
serializers use, so what passes here is what integrators' tools will see.
"""
import json
import sys
import urllib.request

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

url, dataschema = sys.argv[1], sys.argv[2]
client = SchemaRegistryClient({"url": url})
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


subjects = client.get_subjects()
check("hutong.person.v2-value" in subjects, f"person subject listed: {subjects}")
check(all(s.endswith("-value") for s in subjects), "TopicNameStrategy subjects")

latest = client.get_latest_version("hutong.person.v2-value")
check(latest.schema.schema_type == "JSON", "schemaType JSON")
person = json.loads(latest.schema.schema_str)
check(person["title"] == "人口" and "person_key" in person["properties"], "the person schema")
check(client.get_versions("hutong.person.v2-value")[-1] == latest.version, "versions end at latest")

by_id = client.get_schema(latest.schema_id)
check(json.loads(by_id.schema_str) == person, "schema by global id")

# ce_dataschema on each message resolves through the registry.
with urllib.request.urlopen(dataschema) as r:
    resolved = json.loads(json.loads(r.read())["schema"])
check(resolved == person, f"{dataschema} resolves to the current person schema")

# Compatibility: an added optional field (closed model) passes, a narrowed one does not.
ok = dict(person, properties=dict(person["properties"], nickname={"type": "string"}))
check(client.test_compatibility("hutong.person.v2-value", Schema(json.dumps(ok), "JSON")), "compatible change accepted")
bad = json.loads(json.dumps(person))
bad["properties"]["name"]["maxLength"] = 8
check(not client.test_compatibility("hutong.person.v2-value", Schema(json.dumps(bad), "JSON")), "breaking change refused")

try:
    client.get_latest_version("no.such.subject-value")
    check(False, "unknown subject must fail")
except SchemaRegistryError as e:
    check(e.error_code == 40401, f"40401 for an unknown subject, got {e.error_code}")

print(f"{checks} passed, 0 failed")
