package dev.hutong.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Rebuilds the current facts of one Hutong entity topic (docs/consuming.md), as an integrator
 * would: per fact key [entity key, department, kind, source id] the message with the highest
 * ce_revision (at an equal revision the later offset); per source record (department, kind,
 * source id) only the facts of its highest revision are current, and a tombstone at revision r
 * deletes every fact of its record up to r; a message carrying the ce_id of the fact kept for its
 * key is a retry. (A record's facts can span topics, e.g. person and household: read every topic
 * of interest before deciding what is current.) Then shows co-partitioning: the partition Kafka's
 * default partitioner gives an entity key is the partition of every Hutong fact about it.
 *
 * <pre>usage: RebuildState BOOTSTRAP TOPIC [ENTITY_KEY]   e.g. 127.0.0.1:9092 hutong.person.v2</pre>
 */
public final class RebuildState {
  /** The message kept for a fact key. */
  record Fact(long revision, int partition, long offset, String ceId, JsonNode value) {}

  /** Per source record: its highest revision, and the highest revision it was deleted at. */
  static final class Record {
    long top = -1;
    long deleted = -1;
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: RebuildState BOOTSTRAP TOPIC [ENTITY_KEY]");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    ObjectMapper json = new ObjectMapper();

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, "rebuild-" + UUID.randomUUID());
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

    Map<List<String>, Fact> facts = new HashMap<>();
    Map<List<String>, Record> records = new HashMap<>();
    int messages = 0;
    int retries = 0;
    int partitionCount;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo p : consumer.partitionsFor(topic)) {
        partitions.add(new TopicPartition(topic, p.partition()));
      }
      partitionCount = partitions.size();
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      // Read to the end offsets of now (Apache Kafka answers them exactly).
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          messages++;
          String ceId = header(r, "ce_id");
          List<String> key = List.of(json.readValue(r.key(), String[].class));
          long revision = Long.parseLong(header(r, "ce_revision"));
          Fact kept = facts.get(key);
          if (kept != null && kept.ceId().equals(ceId)) {
            retries++;
            continue;
          }
          // Facts of one key share a partition: offsets order them.
          if (kept == null || revision >= kept.revision()) {
            JsonNode value = r.value() == null ? null : json.readTree(r.value());
            facts.put(key, new Fact(revision, r.partition(), r.offset(), ceId, value));
          }
          Record record = records.computeIfAbsent(key.subList(1, 4), k -> new Record());
          record.top = Math.max(record.top, revision);
          if (r.value() == null) {
            record.deleted = Math.max(record.deleted, revision);
          }
        }
      }
    }
    // Current: the facts of their record's highest revision, not deleted since.
    facts.entrySet().removeIf(e -> {
      Record record = records.get(e.getKey().subList(1, 4));
      Fact f = e.getValue();
      return f.value() == null || f.revision() != record.top || f.revision() <= record.deleted;
    });
    Set<String> entities = new HashSet<>();
    facts.keySet().forEach(k -> entities.add(k.get(0)));
    System.out.printf("%s: %d messages, %d retries, %d current facts, %d entities%n",
        topic, messages, retries, facts.size(), entities.size());

    if (args.length > 2) {
      String entityKey = args[2];
      // Kafka's default partitioner of a keyed record: the same murmur2 Hutong's producer uses
      // on the entity key, so a topic keyed by the entity key with as many partitions is
      // co-partitioned with Hutong's.
      int expected = Utils.toPositive(Utils.murmur2(entityKey.getBytes(StandardCharsets.UTF_8))) % partitionCount;
      facts.forEach((k, f) -> {
        if (k.get(0).equals(entityKey)) {
          System.out.printf("  %s/%s revision %d at partition %d (murmur2 says %d): %s%n",
              k.get(1), k.get(2), f.revision(), f.partition(), expected, f.value());
        }
      });
    }
  }

  private static String header(ConsumerRecord<byte[], byte[]> r, String name) {
    Header h = r.headers().lastHeader(name);
    if (h == null) {
      throw new IllegalStateException(r.topic() + "@" + r.offset() + ": no " + name + " header");
    }
    return new String(h.value(), StandardCharsets.UTF_8);
  }
}
