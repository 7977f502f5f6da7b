"""Rebuild the current state of Hutong's entity topics, as any integrator would.

Reads every entity topic from the beginning to its end with confluent-kafka, and applies the
rules of docs/consuming.md:

- the Kafka key is a fact key, the JSON array [entity key, department, kind, source id]: one
  department's fact about one entity;
- per fact key, keep the message with the highest `ce_revision` header; at an equal revision the
  later offset wins (a correction published under the same revision); a tombstone (no value)
  deletes the fact and is remembered with its revision, so an older upsert that arrives later
  does not bring it back;
- a message whose `ce_id` was already applied is a duplicate (a retry): skip it;
- an entity's current picture is the set of its facts, one per source; joins go through the keys
  the standard defines (person.household_key, household.members[].person_key,
  building.residents[].person_key, building.grid_code, ...).

usage:
  rebuild_state.py [--bootstrap 127.0.0.1:9092] [--prefix hutong] [--version 2]
                   [--person PERSON_KEY] [--json]

Prints, per topic, how many messages were read, how many duplicates skipped, how many facts
and entities are current; with --person, that person's facts (one per department) and the
households, buildings and grids that name them.
"""
import argparse
import json
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

ENTITIES = ["person", "household", "building", "organization", "grid", "event", "service_request", "service_resource"]


def read_to_end(bootstrap, topic):
    """Every message of `topic`, from the beginning of each partition to its end (the
    partition-EOF event; the local broker's ListOffsets answer is not reliable)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"rebuild-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end, messages = set(), []
        while len(at_end) < len(partitions):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise RuntimeError(f"{topic}: {msg.error()}")
            at_end.discard(msg.partition())
            messages.append(msg)
        return messages
    finally:
        consumer.close()


def rebuild(messages):
    """The current facts of one topic: fact key -> (revision, offset, value or None)."""
    facts, seen, duplicates = {}, set(), 0
    for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        headers = {k: v.decode() for k, v in (msg.headers() or [])}
        if headers["ce_id"] in seen:
            duplicates += 1
            continue
        seen.add(headers["ce_id"])
        key = tuple(json.loads(msg.key()))
        revision = int(headers["ce_revision"])
        kept = facts.get(key)
        # Facts of one key share a partition, so offsets order them.
        if kept is None or revision >= kept[0]:
            value = json.loads(msg.value()) if msg.value() is not None else None
            facts[key] = (revision, msg.offset(), value)
    return facts, duplicates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--prefix", default="hutong")
    ap.add_argument("--version", default="2", help="the topics' major version (v2: facts keyed per source)")
    ap.add_argument("--person", help="a person_key: print that person's facts and what names them")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of text")
    args = ap.parse_args()

    summary, state = {}, {}
    for entity in ENTITIES:
        topic = f"{args.prefix}.{entity}.v{args.version}"
        messages = read_to_end(args.bootstrap, topic)
        facts, duplicates = rebuild(messages)
        current = {k: v for k, v in facts.items() if v[2] is not None}
        state[entity] = current
        summary[topic] = {
            "messages": len(messages),
            "duplicates": duplicates,
            "facts": len(current),
            "deleted": len(facts) - len(current),
            "entities": len({k[0] for k in current}),
        }

    out = {"topics": summary}
    if args.person:
        pk = args.person
        person = [{"department": k[1], "kind": k[2], "revision": v[0], "value": v[2]}
                  for k, v in state["person"].items() if k[0] == pk]
        households = [{"household_key": k[0], "department": k[1],
                       "relation": next(m.get("relation") for m in v[2]["members"] if m["person_key"] == pk)}
                      for k, v in state["household"].items()
                      if any(m.get("person_key") == pk for m in v[2].get("members", []))]
        buildings = [{"building_key": k[0], "department": k[1], "grid_code": v[2].get("grid_code"),
                      "room": next(r.get("room") for r in v[2]["residents"] if r["person_key"] == pk)}
                     for k, v in state["building"].items()
                     if any(r.get("person_key") == pk for r in v[2].get("residents", []))]
        grid_codes = {b["grid_code"] for b in buildings if b["grid_code"]}
        grids = sorted({(k[0], v[2].get("name")) for k, v in state["grid"].items() if k[0] in grid_codes})
        out["person"] = {"person_key": pk, "facts": person, "households": households,
                         "buildings": buildings, "grids": [{"grid_code": g, "name": n} for g, n in grids]}

    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False)
        print()
        return
    for topic, s in summary.items():
        print(f"{topic:<32} {s['messages']:>5} messages  {s['duplicates']:>3} duplicates  "
              f"{s['facts']:>4} facts  {s['entities']:>4} entities")
    if args.person:
        p = out["person"]
        print(f"\nperson {p['person_key'][:16]}…: facts from {sorted({f['department'] for f in p['facts']})}")
        for h in p["households"]:
            print(f"  household {h['household_key']} (relation {h['relation']}, from {h['department']})")
        for b in p["buildings"]:
            print(f"  building {b['building_key']} room {b['room']} in grid {b['grid_code']}")
        for g in p["grids"]:
            print(f"  grid {g['grid_code']} {g['name']}")


if __name__ == "__main__":
    main()
