package dev.hutong.examples;

import cn.hutong.v1.IngestGrpc;
import cn.hutong.v1.Op;
import cn.hutong.v1.Receipt;
import cn.hutong.v1.RecordResult;
import cn.hutong.v1.SourceRecord;
import cn.hutong.v1.SubmitRequest;
import cn.hutong.v1.SubmitResponse;
import cn.hutong.v1.Violation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import com.google.protobuf.Timestamp;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A minimal Hutong department client: submits an NDJSON export to the gateway's
 * {@code hutong.v1.Ingest/Submit} over mutual TLS and prints one JSON line per record answer.
 *
 * <p>The same command line, input rules, output and exit codes as
 * {@code examples/python/hutong_department.py}: 0 every record PUBLISHED or DUPLICATE, 1 any
 * other answer (REJECTED), 2 bad arguments or input, no connection, TLS or identity refused, or
 * another call-level error. The department is the identity its client certificate names in the
 * gateway's policy; nothing in the payload names it.
 */
public final class HutongDepartment {
  static final int EXIT_OK = 0;
  static final int EXIT_REJECTED = 1;
  static final int EXIT_FAILED = 2;

  static final ZoneOffset BEIJING = ZoneOffset.ofHours(8);
  static final Pattern RFC3339 =
      Pattern.compile("\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})");
  static final Pattern DIGITS = Pattern.compile("[0-9]+");
  // A line is one JSON value: "{...} trailing text" is not JSON (as for serde_json and Python).
  static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  // UTF-8 whatever the platform's default: the answers carry Chinese messages.
  static final PrintStream OUT =
      new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
  static final PrintStream ERR =
      new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);

  static final String USAGE =
      String.join(
          "\n",
          "usage: hutong-department --gateway HOST:PORT --ca CA.pem --cert DEPT.pem --key DEPT.key",
          "                         [--server-name NAME] --kind KIND [--id-field F --revision-field F]",
          "                         [--batch-size N] [--timeout SECONDS] FILE.ndjson",
          "",
          "Submit a department's NDJSON export to a Hutong gateway (hutong.v1.Ingest/Submit) over",
          "mutual TLS. The department is the identity its client certificate names in the gateway's",
          "policy. Prints one JSON line per record on stdout, a summary on stderr.",
          "",
          "  FILE.ndjson           the export, one JSON record per line ('-': stdin)",
          "  --gateway HOST:PORT   the gateway's gRPC address, e.g. 127.0.0.1:50051",
          "  --ca CA.pem           CA certificate(s) that signed the gateway's certificate",
          "  --cert DEPT.pem       the department's client certificate (PEM)",
          "  --key DEPT.key        its private key (PEM, PKCS#8)",
          "  --server-name NAME    the name to verify the gateway's certificate against, when it is",
          "                        not the host of --gateway",
          "  --kind, -k KIND       the department's record kind, e.g. household_registration",
          "  --id-field F          payload field holding the source id of bare payload lines",
          "  --revision-field F    payload field holding the revision of bare payload lines: an",
          "                        integer, or a time (its Unix seconds)",
          "  --batch-size N        records per Submit call (default 500)",
          "  --timeout SECONDS     deadline of each call (default 120)",
          "",
          "Each line is a wrapper {\"source_id\", \"revision\", \"op\", \"occurred_at\", \"charset\",",
          "\"payload\": {...} | \"payload_base64\": \"...\"} or, with --id-field and --revision-field, a",
          "bare payload object. Exit codes: 0 every record PUBLISHED or DUPLICATE; 1 any record",
          "REJECTED (or another status); 2 bad arguments or input, connection, TLS or identity",
          "refused, or another call-level error.");

  /** Why the command cannot go on: printed, exit 2. */
  static final class Failure extends Exception {
    Failure(String message) {
      super(message);
    }
  }

  /** The command line. */
  static final class Args {
    String gateway;
    String ca;
    String cert;
    String key;
    String serverName;
    String kind;
    String idField;
    String revisionField;
    int batchSize = 500;
    double timeoutSeconds = 120;
    String file;

    static Args parse(String[] argv) throws Failure {
      Args a = new Args();
      for (int i = 0; i < argv.length; i++) {
        String arg = argv[i];
        if (arg.equals("-h") || arg.equals("--help")) {
          OUT.println(USAGE);
          OUT.flush();
          System.exit(EXIT_OK);
        }
        if (!arg.startsWith("-") || arg.equals("-")) {
          if (a.file != null) {
            throw new Failure("one FILE.ndjson only (got " + a.file + " and " + arg + ")");
          }
          a.file = arg;
          continue;
        }
        String name = arg;
        String value = null;
        int eq = arg.indexOf('=');
        if (arg.startsWith("--") && eq > 0) {
          name = arg.substring(0, eq);
          value = arg.substring(eq + 1);
        } else {
          if (i + 1 >= argv.length) {
            throw new Failure(arg + " needs a value");
          }
          value = argv[++i];
        }
        switch (name) {
          case "--gateway" -> a.gateway = value;
          case "--ca" -> a.ca = value;
          case "--cert" -> a.cert = value;
          case "--key" -> a.key = value;
          case "--server-name" -> a.serverName = value;
          case "--kind", "-k" -> a.kind = value;
          case "--id-field" -> a.idField = value;
          case "--revision-field" -> a.revisionField = value;
          case "--batch-size" -> a.batchSize = parseInt(name, value);
          case "--timeout" -> a.timeoutSeconds = parseDouble(name, value);
          default -> throw new Failure("unknown option " + name);
        }
      }
      List<String> missing = new ArrayList<>();
      if (a.gateway == null) missing.add("--gateway");
      if (a.ca == null) missing.add("--ca");
      if (a.cert == null) missing.add("--cert");
      if (a.key == null) missing.add("--key");
      if (a.kind == null) missing.add("--kind");
      if (a.file == null) missing.add("FILE.ndjson");
      if (!missing.isEmpty()) {
        throw new Failure("the following arguments are required: " + String.join(", ", missing));
      }
      if (a.batchSize < 1) throw new Failure("--batch-size must be at least 1");
      if (a.timeoutSeconds <= 0) throw new Failure("--timeout must be positive");
      return a;
    }

    static int parseInt(String name, String v) throws Failure {
      try {
        return Integer.parseInt(v);
      } catch (NumberFormatException e) {
        throw new Failure(name + ": not an integer: " + v);
      }
    }

    static double parseDouble(String name, String v) throws Failure {
      try {
        return Double.parseDouble(v);
      } catch (NumberFormatException e) {
        throw new Failure(name + ": not a number: " + v);
      }
    }
  }

  /** A source record and the line of the export it came from. */
  record Line(int number, SourceRecord record) {}

  // ------------------------------------------------------------------------------------- input

  static List<Line> readExport(String path, String kind, String idField, String revisionField)
      throws Failure {
    byte[] data;
    String name;
    try {
      if (path.equals("-")) {
        data = readAll(System.in);
        name = "stdin";
      } else {
        data = Files.readAllBytes(Path.of(path));
        name = Path.of(path).getFileName().toString();
      }
    } catch (IOException e) {
      throw new Failure("cannot read " + path + ": " + e.getMessage());
    }
    List<Line> out = new ArrayList<>();
    int start = 0;
    int number = 0;
    while (start <= data.length) {
      int end = start;
      while (end < data.length && data[end] != '\n') end++;
      number++;
      int stop = end;
      if (stop > start && data[stop - 1] == '\r') stop--;
      byte[] raw = java.util.Arrays.copyOfRange(data, start, stop);
      start = end + 1;
      if (isBlank(raw)) continue;
      String where = path + ":" + number;

      JsonNode value;
      try {
        value = JSON.readTree(raw);
      } catch (IOException e) {
        value = null;
      }
      if (value == null || value.isMissingNode()) {
        // Not JSON: sent as it is, so that the gateway answers it (REJECTED) and keeps the
        // original in the dead-letter topic. Its id is its place, as it never becomes a fact.
        out.add(
            new Line(
                number,
                SourceRecord.newBuilder()
                    .setKind(kind)
                    .setSourceId(name + ":" + number)
                    .setRevision(1)
                    .setPayload(ByteString.copyFrom(raw))
                    .build()));
        continue;
      }
      if (value.isObject() && (value.has("payload") || value.has("payload_base64"))) {
        out.add(new Line(number, wrapper((ObjectNode) value, kind, where)));
        continue;
      }

      // A bare payload: its identity must come from the department's own fields.
      if (idField == null) {
        throw new Failure(
            where
                + ": a bare payload line needs its source id: name the field that holds the record's"
                + " id in the department's system with --id-field (a line number is not an id: a"
                + " re-export would reuse it for another record, and consumers drop a repeated event"
                + " id)");
      }
      String sourceId = idOf(value.get(idField));
      if (sourceId == null) {
        throw new Failure(where + ": no source id in field \"" + idField + "\" (--id-field)");
      }
      if (revisionField == null) {
        throw new Failure(
            where
                + ": a bare payload line needs its revision: name a version or last-modified column"
                + " with --revision-field (an integer, or a time: its Unix seconds), so an updated"
                + " record supersedes the one before");
      }
      Long revision = revisionOf(value.get(revisionField));
      if (revision == null) {
        throw new Failure(
            where + ": no revision in field \"" + revisionField + "\" (an integer, or a time)");
      }
      // The line's own bytes, untouched: the gateway decodes them.
      out.add(
          new Line(
              number,
              SourceRecord.newBuilder()
                  .setKind(kind)
                  .setSourceId(sourceId)
                  .setRevision(revision)
                  .setPayload(ByteString.copyFrom(raw))
                  .build()));
    }
    return out;
  }

  static SourceRecord wrapper(ObjectNode w, String kind, String where) throws Failure {
    SourceRecord.Builder rec = SourceRecord.newBuilder().setKind(kind);
    JsonNode sid = w.get("source_id");
    if (sid == null || !(sid.isTextual() || sid.isNumber())) {
      throw new Failure(
          where
              + ": the wrapper has no source_id: give each record its id in the department's"
              + " system (a line number is not one: a re-export would reuse it for another record)");
    }
    rec.setSourceId(sid.isTextual() ? sid.textValue() : sid.asText());
    JsonNode revision = w.get("revision");
    if (revision == null) {
      rec.setRevision(1);
    } else if (revision.isIntegralNumber() && revision.canConvertToLong() && revision.longValue() >= 0) {
      rec.setRevision(revision.longValue());
    } else {
      throw new Failure(where + ": revision must be a non-negative integer");
    }
    JsonNode op = w.get("op");
    String opName = op == null || op.isNull() ? "UPSERT" : op.asText().toUpperCase(Locale.ROOT);
    switch (opName) {
      case "UPSERT" -> rec.setOp(Op.OP_UPSERT);
      case "DELETE" -> rec.setOp(Op.OP_DELETE);
      case "EVENT" -> rec.setOp(Op.OP_EVENT);
      default -> throw new Failure(where + ": op must be UPSERT, DELETE or EVENT, got " + op);
    }
    JsonNode occurred = w.get("occurred_at");
    if (occurred != null && occurred.isTextual()) {
      OffsetDateTime t = parseRfc3339(occurred.textValue());
      if (t == null) {
        throw new Failure(where + ": occurred_at \"" + occurred.textValue() + "\" is not an RFC 3339 time");
      }
      rec.setOccurredAt(
          Timestamp.newBuilder().setSeconds(t.toEpochSecond()).setNanos(t.getNano()).build());
    }
    JsonNode charset = w.get("charset");
    if (charset != null && charset.isTextual()) rec.setCharset(charset.textValue());
    if (w.has("payload_base64")) {
      // Legacy exports (GBK, GB18030) travel as their original bytes; charset says which.
      JsonNode b64 = w.get("payload_base64");
      if (!b64.isTextual()) throw new Failure(where + ": payload_base64 must be a string");
      try {
        rec.setPayload(ByteString.copyFrom(Base64.getDecoder().decode(b64.textValue())));
      } catch (IllegalArgumentException e) {
        throw new Failure(where + ": payload_base64 is not base64: " + e.getMessage());
      }
    } else {
      JsonNode payload = w.get("payload");
      try {
        // A string payload is sent as its bytes; anything else as compact JSON, keys in their
        // order: the bytes `hutong ingest` sends for the same line. The event id covers them, so
        // the same record sent by two clients is one event (the second answer: DUPLICATE).
        byte[] bytes =
            payload.isTextual()
                ? payload.textValue().getBytes(StandardCharsets.UTF_8)
                : JSON.writeValueAsBytes(payload);
        rec.setPayload(ByteString.copyFrom(bytes));
      } catch (JsonProcessingException e) {
        throw new Failure(where + ": " + e.getOriginalMessage());
      }
    }
    return rec.build();
  }

  static String idOf(JsonNode v) {
    if (v == null) return null;
    if (v.isNumber()) return v.asText();
    if (v.isTextual() && !v.textValue().isBlank()) return v.textValue();
    return null;
  }

  /**
   * A revision from a payload field: a non-negative integer (or its digits), or a time (RFC 3339,
   * or 'YYYY-MM-DD HH:MM:SS' / 'YYYY-MM-DD' in Beijing time) as its Unix seconds.
   */
  static Long revisionOf(JsonNode v) {
    if (v == null) return null;
    if (v.isIntegralNumber()) {
      return v.canConvertToLong() && v.longValue() >= 0 ? v.longValue() : null;
    }
    if (!v.isTextual()) return null;
    String s = v.textValue().strip();
    if (DIGITS.matcher(s).matches()) {
      try {
        return Long.parseLong(s);
      } catch (NumberFormatException e) {
        return null;
      }
    }
    Long seconds = null;
    OffsetDateTime t = parseRfc3339(s);
    if (t != null) {
      seconds = t.toEpochSecond();
    } else {
      try {
        seconds =
            LocalDateTime.parse(s, DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss"))
                .toEpochSecond(BEIJING);
      } catch (DateTimeParseException e) {
        try {
          seconds = LocalDate.parse(s, DateTimeFormatter.ISO_LOCAL_DATE).atStartOfDay().toEpochSecond(BEIJING);
        } catch (DateTimeParseException e2) {
          return null;
        }
      }
    }
    return seconds >= 0 ? seconds : null;
  }

  static OffsetDateTime parseRfc3339(String s) {
    if (!RFC3339.matcher(s).matches()) return null;
    String iso = (s.substring(0, 10) + "T" + s.substring(11)).toUpperCase(Locale.ROOT);
    try {
      return OffsetDateTime.parse(iso, DateTimeFormatter.ISO_OFFSET_DATE_TIME);
    } catch (DateTimeParseException e) {
      return null;
    }
  }

  static boolean isBlank(byte[] raw) {
    for (byte b : raw) {
      if (b != ' ' && b != '\t' && b != '\r' && b != '\n' && b != 0x0b && b != 0x0c) return false;
    }
    return true;
  }

  static byte[] readAll(InputStream in) throws IOException {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    in.transferTo(buf);
    return buf.toByteArray();
  }

  // ------------------------------------------------------------------------------------- gRPC

  static ManagedChannel channel(Args a) throws Failure {
    for (String[] f :
        new String[][] {{a.ca, "CA certificate (--ca)"}, {a.cert, "client certificate (--cert)"},
          {a.key, "client key (--key)"}}) {
      if (!Files.isReadable(Path.of(f[0]))) {
        throw new Failure("cannot read the " + f[1] + " " + f[0]);
      }
    }
    ChannelCredentials creds;
    try {
      creds =
          TlsChannelCredentials.newBuilder()
              .keyManager(new File(a.cert), new File(a.key))
              .trustManager(new File(a.ca))
              .build();
    } catch (IOException | RuntimeException e) {
      throw new Failure("--ca/--cert/--key: " + e.getMessage());
    }
    String target = a.gateway;
    for (String prefix : new String[] {"https://", "grpcs://"}) {
      if (target.startsWith(prefix)) target = target.substring(prefix.length());
    }
    while (target.endsWith("/")) target = target.substring(0, target.length() - 1);
    try {
      ManagedChannelBuilder<?> b =
          Grpc.newChannelBuilder(target, creds).maxInboundMessageSize(64 * 1024 * 1024);
      if (a.serverName != null) {
        // The name checked against the gateway's certificate when it differs from the address.
        b.overrideAuthority(a.serverName);
      }
      return b.build();
    } catch (RuntimeException e) {
      // E.g. a key that is not PKCS#8 PEM or does not match the certificate.
      throw new Failure("--ca/--cert/--key: " + rootMessage(e));
    }
  }

  /** The call's status and what it most likely means. */
  static String[] callError(StatusRuntimeException e) {
    io.grpc.Status s = e.getStatus();
    String details = s.getDescription() == null ? "" : s.getDescription();
    String cause = s.getCause() == null ? "" : rootMessage(s.getCause());
    String text = s.getCode() + ": " + details + (cause.isEmpty() ? "" : " (" + cause + ")");
    String all = details + " " + cause;
    String hint =
        switch (s.getCode()) {
          case UNAVAILABLE -> {
            if (all.contains("Connection refused")) yield "nothing listens at --gateway";
            if (all.contains("key values mismatch") || all.contains("private key")) {
              yield "--key is not the private key of --cert (both PEM, the key PKCS#8)";
            }
            if (all.contains("No subject alternative") || all.contains("No name matching")) {
              yield "the gateway's certificate does not name this host: connect by a name it has,"
                  + " or give --server-name";
            }
            if (all.contains("PKIX") || all.contains("unable to find valid certification path")) {
              yield "the gateway's certificate is not signed by --ca";
            }
            if (all.contains("not an SSL/TLS record") || all.contains("Unsupported or unrecognized SSL")) {
              yield "that port does not speak TLS: is it the gateway's gRPC port?";
            }
            if (all.contains("certificate_unknown") || all.contains("bad_certificate")
                || all.contains("unknown_ca") || all.contains("certificate_revoked")
                || all.contains("certificate_expired") || all.contains("SSL")) {
              yield "the TLS handshake failed; if the gateway refused the client certificate, it is"
                  + " not signed by a CA it trusts, revoked or expired";
            }
            yield "the gateway or its Kafka is unavailable: retry later (safe: event ids are"
                + " deterministic)";
          }
          case UNAUTHENTICATED -> "the gateway did not accept the client certificate as an identity";
          case PERMISSION_DENIED -> "the gateway's policy lets each department submit its own kinds only";
          case INVALID_ARGUMENT ->
              "the request was refused as a whole (e.g. too many records in one call: lower"
                  + " --batch-size)";
          case RESOURCE_EXHAUSTED -> "the gateway is at capacity: retry later, or lower --batch-size";
          case DEADLINE_EXCEEDED -> "no answer within --timeout";
          default -> null;
        };
    return new String[] {text, hint};
  }

  static String rootMessage(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) root = root.getCause();
    String m = root.getMessage();
    return root.getClass().getSimpleName() + (m == null ? "" : ": " + m);
  }

  // ------------------------------------------------------------------------------------ output

  static String statusName(int value) {
    cn.hutong.v1.Status s = cn.hutong.v1.Status.forNumber(value);
    if (s == null) return Integer.toString(value);
    String n = s.name();
    return n.startsWith("STATUS_") ? n.substring("STATUS_".length()) : n;
  }

  static ObjectNode resultJson(int line, RecordResult r) {
    // The fields `hutong ingest --json` prints too, in the order of the Python client.
    ObjectNode o = JSON.createObjectNode();
    o.put("line", line);
    o.put("source_id", r.getSourceId());
    o.put("revision", r.getRevision());
    o.put("status", statusName(r.getStatusValue()));
    ArrayNode receipts = o.putArray("receipts");
    for (Receipt x : r.getReceiptsList()) {
      ObjectNode j = receipts.addObject();
      j.put("entity", x.getEntity());
      j.put("topic", x.getTopic());
      j.put("partition", x.getPartition());
      j.put("offset", x.getOffset());
      j.put("event_id", x.getEventId());
    }
    violations(o.putArray("violations"), r.getViolationsList());
    violations(o.putArray("warnings"), r.getWarningsList());
    return o;
  }

  static void violations(ArrayNode into, List<Violation> vs) {
    for (Violation v : vs) {
      ObjectNode j = into.addObject();
      j.put("pointer", v.getPointer());
      j.put("rule", v.getRule());
      j.put("message", v.getMessage());
    }
  }

  // -------------------------------------------------------------------------------------- main

  public static void main(String[] argv) {
    int code;
    try {
      code = run(argv);
    } catch (Failure f) {
      ERR.println("hutong-department: error: " + f.getMessage());
      code = EXIT_FAILED;
    }
    OUT.flush();
    System.exit(code);
  }

  static int run(String[] argv) throws Failure {
    Args a = Args.parse(argv);
    List<Line> lines = readExport(a.file, a.kind, a.idField, a.revisionField);
    ManagedChannel channel = channel(a);
    Map<String, Integer> counts = new TreeMap<>();
    int answered = 0;
    try {
      IngestGrpc.IngestBlockingStub stub = IngestGrpc.newBlockingStub(channel);
      long deadlineMillis = (long) (a.timeoutSeconds * 1000);
      for (int n = 0, start = 0; start < lines.size(); n++, start += a.batchSize) {
        List<Line> chunk = lines.subList(start, Math.min(start + a.batchSize, lines.size()));
        SubmitRequest.Builder req = SubmitRequest.newBuilder().setBatchId(a.file + "#" + n);
        for (Line l : chunk) req.addRecords(l.record());
        SubmitResponse resp;
        try {
          resp =
              stub.withDeadlineAfter(deadlineMillis, TimeUnit.MILLISECONDS).submit(req.build());
        } catch (StatusRuntimeException e) {
          String[] err = callError(e);
          OUT.flush();
          ERR.println("hutong-department: error: " + a.gateway + ": " + err[0]);
          if (err[1] != null) ERR.println("hutong-department: hint: " + err[1]);
          ERR.println(
              "hutong-department: " + answered + " of " + lines.size() + " records were answered before");
          return EXIT_FAILED;
        }
        if (resp.getResultsCount() != chunk.size()) {
          throw new Failure(
              "the gateway answered " + resp.getResultsCount() + " of " + chunk.size()
                  + " records of batch " + n);
        }
        List<RecordResult> results = new ArrayList<>(resp.getResultsList());
        results.sort(Comparator.comparingInt(RecordResult::getIndex));
        for (RecordResult r : results) {
          int line = r.getIndex() < chunk.size() ? chunk.get(r.getIndex()).number() : 0;
          ObjectNode row = resultJson(line, r);
          counts.merge(row.get("status").asText(), 1, Integer::sum);
          try {
            OUT.writeBytes(JSON.writeValueAsBytes(row));
            OUT.write('\n');
          } catch (JsonProcessingException e) {
            throw new Failure(e.getOriginalMessage());
          }
        }
        answered += chunk.size();
        OUT.flush();
      }
    } finally {
      channel.shutdownNow();
      try {
        channel.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    int published = counts.getOrDefault("PUBLISHED", 0);
    int duplicate = counts.getOrDefault("DUPLICATE", 0);
    StringBuilder summary =
        new StringBuilder()
            .append(a.file).append(": ").append(answered).append(" records of kind ").append(a.kind)
            .append(": ").append(published).append(" published, ")
            .append(counts.getOrDefault("REJECTED", 0)).append(" rejected, ")
            .append(duplicate).append(" duplicate");
    for (Map.Entry<String, Integer> e : counts.entrySet()) {
      String k = e.getKey();
      if (!k.equals("PUBLISHED") && !k.equals("DUPLICATE") && !k.equals("REJECTED")) {
        summary.append(", ").append(e.getValue()).append(' ').append(k.toLowerCase(Locale.ROOT));
      }
    }
    ERR.println(summary);
    return published + duplicate == answered ? EXIT_OK : EXIT_REJECTED;
  }

  private HutongDepartment() {}
}
