"""Rebuild the current state of Hutong's entity topics, as any integrator would.

Reads every entity topic from the beginning to its end with confluent-kafka, and applies the
rules of docs/consuming.md:

- the Kafka key is a fact key, the JSON array [entity key, department, kind, source id]: one
  department's fact, through one of its source records, about one entity;
- per fact key, keep the message with the highest `ce_revision` header; at an equal revision the
  later offset wins (a correction published under the same revision);
- per source record (department, kind, source id), only the facts of its highest revision are
  current: a record revised to name another entity (a person moved to another household) leaves
  its old fact in the log, obsolete; a tombstone (no value) at revision r deletes every fact of
  its record up to r;
- a message whose `ce_id` is the one of the fact kept for its key is a retry: skip it (a
  consumer that counts events skips every `ce_id` it has seen);
- an entity's current picture is the set of its current facts, one per source record; joins go
  through the keys the standard defines (person.household_key, household.members[].person_key,
  building.residents[].person_key, building.grid_code, ...).

usage:
  rebuild_state.py [--bootstrap 127.0.0.1:9092] [--prefix hutong] [--version 2]
                   [--person PERSON_KEY] [--json]

Prints, per topic, how many messages were read, how many retries skipped, how many facts and
entities are current; with --person, that person's facts (one per department and record) and
the households, buildings and grids that name them.
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


def rebuild(messages_by_topic):
    """The current facts of every topic: topic -> {fact key: (revision, value)}, and the retries
    skipped per topic."""
    kept = {}     # (topic, fact key) -> (revision, offset, ce_id, value or None)
    records = {}  # source record (department, kind, source id) -> [highest revision, deleted up to]
    skipped = {t: 0 for t in messages_by_topic}
    for topic, messages in messages_by_topic.items():
        # Facts of one key share a partition, so offsets order them.
        for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            key = tuple(json.loads(msg.key()))
            revision = int(headers["ce_revision"])
            value = json.loads(msg.value()) if msg.value() is not None else None
            previous = kept.get((topic, key))
            if previous is not None and previous[2] == headers["ce_id"]:
                skipped[topic] += 1
                continue
            if previous is None or revision >= previous[0]:
                kept[(topic, key)] = (revision, msg.offset(), headers["ce_id"], value)
            record = records.setdefault(key[1:], [-1, -1])
            record[0] = max(record[0], revision)
            if value is None:
                record[1] = max(record[1], revision)
    current = {t: {} for t in messages_by_topic}
    for (topic, key), (revision, _, _, value) in kept.items():
        top, deleted = records[key[1:]]
        if value is not None and revision == top and revision > deleted:
            current[topic][key] = (revision, value)
    return current, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--prefix", default="hutong")
    ap.add_argument("--version", default="2", help="the topics' major version (v2: facts keyed per source)")
    ap.add_argument("--person", help="a person_key: print that person's facts and what names them")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of text")
    args = ap.parse_args()

    topics = {entity: f"{args.prefix}.{entity}.v{args.version}" for entity in ENTITIES}
    messages = {topic: read_to_end(args.bootstrap, topic) for topic in topics.values()}
    current, skipped = rebuild(messages)
    state = {entity: current[topic] for entity, topic in topics.items()}
    summary = {
        topic: {
            "messages": len(messages[topic]),
            "duplicates": skipped[topic],
            "facts": len(current[topic]),
            "entities": len({k[0] for k in current[topic]}),
        }
        for topic in topics.values()
    }

    out = {"topics": summary}
    if args.person:
        pk = args.person
        person = [{"department": k[1], "kind": k[2], "revision": v[0], "value": v[1]}
                  for k, v in state["person"].items() if k[0] == pk]
        households = [{"household_key": k[0], "department": k[1],
                       "relation": next(m.get("relation") for m in v[1]["members"] if m["person_key"] == pk)}
                      for k, v in state["household"].items()
                      if any(m.get("person_key") == pk for m in v[1].get("members", []))]
        buildings = [{"building_key": k[0], "department": k[1], "grid_code": v[1].get("grid_code"),
                      "room": next(r.get("room") for r in v[1]["residents"] if r["person_key"] == pk)}
                     for k, v in state["building"].items()
                     if any(r.get("person_key") == pk for r in v[1].get("residents", []))]
        grid_codes = {b["grid_code"] for b in buildings if b["grid_code"]}
        grids = sorted({(k[0], v[1].get("name")) for k, v in state["grid"].items() if k[0] in grid_codes})
        out["person"] = {"person_key": pk, "facts": person, "households": households,
                         "buildings": buildings, "grids": [{"grid_code": g, "name": n} for g, n in grids]}

    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False)
        print()
        return
    for topic, s in summary.items():
        print(f"{topic:<32} {s['messages']:>5} messages  {s['duplicates']:>3} retries  "
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
