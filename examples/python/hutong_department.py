#!/usr/bin/env python3
"""A minimal Hutong department client: submit an NDJSON export to the gateway.

The gateway's gRPC service hutong.v1.Ingest (proto/hutong/v1/ingest.proto) is
called with unary Submit over mutual TLS; the department is the one the client
certificate names in the gateway's policy, never a field of the payload.

The Python stubs are generated from the repository's proto files at run time
with grpcio-tools (grpc_tools.protoc), into --stubs DIR (kept, regenerated when
the proto changes) or into a temporary folder removed at exit; no generated
code is checked in.

Each line of the export is either a wrapper

    {"source_id": "...", "revision": 1, "op": "UPSERT", "occurred_at": "...",
     "charset": "gbk", "payload": {...} | "payload_base64": "..."}

or a bare payload object, whose source id and revision are taken from the
fields named by --id-field and --revision-field. The output is one JSON line
per record on stdout, in file order (line, source_id, revision, status, receipts,
violations, warnings: the fields `hutong ingest --json` prints too), and
a summary line on stderr.

Exit codes: 0 every record PUBLISHED or DUPLICATE; 1 any other answer
(REJECTED: see its violations); 2 nothing or not everything could be
submitted: bad arguments or input, no connection, TLS or identity refused,
or another call-level error.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import importlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_REJECTED, EXIT_FAILED = 0, 1, 2

HERE = Path(__file__).resolve().parent
DEFAULT_PROTO_DIR = HERE.parent.parent / "proto"
PROTO_FILE = "hutong/v1/ingest.proto"
BEIJING = dt.timezone(dt.timedelta(hours=8))


class InputError(Exception):
    """A line of the export that cannot be turned into a source record."""


# --------------------------------------------------------------------------- stubs


def load_stubs(proto_dir: Path, stubs_dir: Path | None):
    """Generate (when needed) and import ingest_pb2 and ingest_pb2_grpc.

    The stubs of --stubs DIR are reused while the proto files and grpcio-tools
    are the ones they were made from (a stamp file records both).
    """
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        fail("grpcio-tools is not installed: pip install -r requirements.txt")

    proto_path = proto_dir / PROTO_FILE
    if not proto_path.is_file():
        fail(f"{proto_path} not found: give the repository's proto folder with --proto-dir")

    digest = hashlib.sha256()
    for p in sorted((proto_dir / "hutong" / "v1").glob("*.proto")):
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    try:
        from importlib.metadata import version

        digest.update(version("grpcio-tools").encode())
    except Exception:  # noqa: BLE001 - a missing version only weakens the stamp
        pass
    stamp = digest.hexdigest()

    if stubs_dir is None:
        stubs_dir = Path(tempfile.mkdtemp(prefix="hutong-stubs-"))
        import atexit

        atexit.register(shutil.rmtree, stubs_dir, True)
    stubs_dir.mkdir(parents=True, exist_ok=True)
    target = stubs_dir / stamp[:16]

    if not (target / "STAMP").is_file():
        # Generate next to the target and rename it into place, so that clients started at the
        # same time with the same --stubs never see half-written modules.
        work = Path(tempfile.mkdtemp(prefix=".gen-", dir=stubs_dir))
        well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/timestamp.proto
        args = [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{well_known}",
            f"--python_out={work}",
            f"--grpc_python_out={work}",
            str(proto_path),
        ]
        if protoc.main(args) != 0:
            shutil.rmtree(work, ignore_errors=True)
            fail(f"grpc_tools.protoc could not compile {proto_path}")
        (work / "STAMP").write_text(stamp + "\n")
        try:
            os.rename(work, target)
        except OSError:  # another client was quicker: use its stubs
            shutil.rmtree(work, ignore_errors=True)
            if not (target / "STAMP").is_file():
                fail(f"could not write the stubs to {target}")

    sys.path.insert(0, str(target))
    pb2 = importlib.import_module("hutong.v1.ingest_pb2")
    pb2_grpc = importlib.import_module("hutong.v1.ingest_pb2_grpc")
    return pb2, pb2_grpc


# --------------------------------------------------------------------------- input


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def revision_of(value) -> int | None:
    """A revision from a payload field: a non-negative integer (or its digits), or a time
    (RFC 3339, or 'YYYY-MM-DD HH:MM:SS' / 'YYYY-MM-DD' in Beijing time) as its Unix seconds.
    The rules of `hutong ingest --revision-field`."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    s = value.strip()
    if s.isascii() and s.isdigit():
        return int(s)
    t = None
    if RFC3339.fullmatch(s):
        t = parse_rfc3339(s)
    else:
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                t = dt.datetime.strptime(s, fmt).replace(tzinfo=BEIJING)
                break
            except ValueError:
                continue
    if t is None:
        return None
    seconds = int(t.timestamp())
    return seconds if seconds >= 0 else None


def parse_rfc3339(s: str) -> dt.datetime | None:
    """An RFC 3339 time with its offset (fractions beyond microseconds are dropped)."""
    if not RFC3339.fullmatch(s):
        return None
    s = s[:10] + "T" + s[11:]
    if s[-1] in "Zz":
        s = s[:-1] + "+00:00"
    head, _, frac_and_offset = s.partition(".")
    if frac_and_offset:  # keep at most 6 digits of the fraction for fromisoformat
        digits = re.match(r"\d+", frac_and_offset).group(0)
        s = head + "." + digits[:6].ljust(6, "0") + frac_and_offset[len(digits):]
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


def id_of(value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def compact_json(value) -> bytes:
    # Compact, key order kept, UTF-8 unescaped: the bytes `hutong ingest` sends for the same
    # wrapper line. The gateway's event id covers the payload bytes, so two clients that send
    # one record byte for byte alike get one event (the second answer is DUPLICATE).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def read_export(path: str, kind: str, id_field: str | None, revision_field: str | None, pb2):
    """(line number, SourceRecord) for each non-blank line of the export."""
    if path == "-":
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
    ops = {"UPSERT": pb2.OP_UPSERT, "DELETE": pb2.OP_DELETE, "EVENT": pb2.OP_EVENT}
    out = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        where = f"{path}:{i}"
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            # Not JSON: sent as it is, so that the gateway answers it (REJECTED) and keeps the
            # original in the dead-letter topic. Its id is its place, as it never becomes a fact.
            rec = pb2.SourceRecord(kind=kind, source_id=f"{name}:{i}", revision=1, payload=raw)
            out.append((i, rec))
            continue

        if isinstance(value, dict) and ("payload" in value or "payload_base64" in value):
            rec = pb2.SourceRecord(kind=kind)
            sid = value.get("source_id")
            if isinstance(sid, bool) or not isinstance(sid, (str, int, float)):
                raise InputError(
                    f"{where}: the wrapper has no source_id: give each record its id in the "
                    "department's system (a line number is not one: a re-export would reuse it "
                    "for another record)"
                )
            rec.source_id = sid if isinstance(sid, str) else json.dumps(sid)
            revision = value.get("revision", 1)
            if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
                raise InputError(f"{where}: revision must be a non-negative integer")
            rec.revision = revision
            op = value.get("op") or "UPSERT"
            if not isinstance(op, str) or op.upper() not in ops:
                raise InputError(f"{where}: op must be UPSERT, DELETE or EVENT, got {op!r}")
            rec.op = ops[op.upper()]
            occurred = value.get("occurred_at")
            if isinstance(occurred, str):
                try:
                    rec.occurred_at.FromJsonString(occurred)
                except ValueError:
                    t = parse_rfc3339(occurred)
                    if t is None:
                        raise InputError(f"{where}: occurred_at {occurred!r} is not an RFC 3339 time") from None
                    rec.occurred_at.FromDatetime(t.astimezone(dt.timezone.utc))
            charset = value.get("charset")
            if isinstance(charset, str):
                rec.charset = charset
            if "payload_base64" in value:
                # Legacy exports (GBK, GB18030) travel as their original bytes; say which in charset.
                b64 = value["payload_base64"]
                if not isinstance(b64, str):
                    raise InputError(f"{where}: payload_base64 must be a string")
                try:
                    rec.payload = base64.b64decode(b64, validate=True)
                except ValueError as e:
                    raise InputError(f"{where}: payload_base64 is not base64: {e}") from None
            else:
                payload = value["payload"]
                # A string payload is sent as its bytes; an object as compact JSON.
                try:
                    rec.payload = payload.encode("utf-8") if isinstance(payload, str) else compact_json(payload)
                except UnicodeEncodeError:
                    raise InputError(f"{where}: the payload holds a lone UTF-16 surrogate escape") from None
            out.append((i, rec))
            continue

        # A bare payload: its identity must come from the department's own fields.
        if not id_field:
            raise InputError(
                f"{where}: a bare payload line needs its source id: name the field that holds the "
                "record's id in the department's system with --id-field (a line number is not an id: "
                "a re-export would reuse it for another record, and consumers drop a repeated event id)"
            )
        sid = id_of(value.get(id_field)) if isinstance(value, dict) else None
        if sid is None:
            raise InputError(f"{where}: no source id in field {id_field!r} (--id-field)")
        if not revision_field:
            raise InputError(
                f"{where}: a bare payload line needs its revision: name a version or last-modified "
                "column with --revision-field (an integer, or a time: its Unix seconds), so an "
                "updated record supersedes the one before"
            )
        revision = revision_of(value.get(revision_field))
        if revision is None:
            raise InputError(f"{where}: no revision in field {revision_field!r} (an integer, or a time)")
        # The line's own bytes, untouched: the gateway decodes them.
        out.append((i, pb2.SourceRecord(kind=kind, source_id=sid, revision=revision, payload=raw)))
    return out


# --------------------------------------------------------------------------- gRPC


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        fail(f"cannot read the {what} {path}: {e.strerror}")


def make_channel(args):
    import grpc

    creds = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.ca, "CA certificate (--ca)"),
        private_key=read_file(args.key, "client key (--key)"),
        certificate_chain=read_file(args.cert, "client certificate (--cert)"),
    )
    target = args.gateway
    for prefix in ("https://", "grpcs://"):
        if target.startswith(prefix):
            target = target[len(prefix):]
    target = target.rstrip("/")
    options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]
    if args.server_name:
        # The name checked against the gateway's certificate when it differs from the address
        # (e.g. connecting to an IP or through a tunnel).
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(target, creds, options=options)


def check_identity(args) -> None:
    """Fail early, with a plain message, on unreadable PEM files or a key that is not the
    certificate's (gRPC itself only says "Failed to create security handshaker")."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=args.ca)
    except (OSError, ssl.SSLError) as e:
        fail(f"--ca {args.ca}: not a PEM CA certificate ({e})")
    try:
        ctx.load_cert_chain(certfile=args.cert, keyfile=args.key)
    except ssl.SSLError as e:
        fail(f"--cert {args.cert} / --key {args.key}: not a PEM certificate and its private key ({e.reason or e})")
    except OSError as e:
        fail(f"--cert {args.cert} / --key {args.key}: {e.strerror or e}")


def call_error(err) -> tuple[str, str | None]:
    """The call's status and details, and what they most likely mean."""
    import grpc

    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else None) or str(err)
    name = code.name if code is not None else "ERROR"
    hint = None
    if code == grpc.StatusCode.UNAVAILABLE:
        if "Connection refused" in details or "Failed to connect to remote host" in details:
            hint = "nothing listens at --gateway"
        elif "Hostname Verification" in details:
            hint = "the gateway's certificate does not name this host: connect by a name it has, or give --server-name"
        elif "CERTIFICATE_VERIFY_FAILED" in details:
            hint = "the gateway's certificate is not signed by --ca"
        elif "WRONG_VERSION_NUMBER" in details:
            hint = "that port does not speak TLS: is it the gateway's gRPC port?"
        elif "TSI_DATA_CORRUPTED" in details or "handshake" in details.lower() or "ALERT" in details:
            hint = (
                "the gateway refused the client certificate during the TLS handshake (not signed by a CA "
                "it trusts, revoked or expired); gRPC logs the TLS alert above"
            )
        else:
            hint = "the gateway or its Kafka is unavailable: retry later (safe: event ids are deterministic)"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "the gateway did not accept the client certificate as an identity"
    elif code == grpc.StatusCode.PERMISSION_DENIED:
        hint = "the gateway's policy lets each department submit its own kinds only"
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        hint = "the request was refused as a whole (e.g. too many records in one call: lower --batch-size)"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        hint = "the gateway is at capacity: retry later, or lower --batch-size"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = "no answer within --timeout"
    return f"{name}: {details}", hint


# --------------------------------------------------------------------------- output


def status_name(pb2, status: int) -> str:
    try:
        return pb2.Status.Name(status).removeprefix("STATUS_")
    except ValueError:
        return str(status)


def result_json(pb2, line: int, r) -> dict:
    def violations(vs):
        return [{"pointer": v.pointer, "rule": v.rule, "message": v.message} for v in vs]

    return {
        "line": line,
        "source_id": r.source_id,
        "revision": r.revision,
        "status": status_name(pb2, r.status),
        "receipts": [
            {"entity": x.entity, "topic": x.topic, "partition": x.partition, "offset": x.offset, "event_id": x.event_id}
            for x in r.receipts
        ],
        "violations": violations(r.violations),
        "warnings": violations(r.warnings),
    }


def fail(message: str):
    print(f"hutong_department: error: {message}", file=sys.stderr)
    sys.exit(EXIT_FAILED)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="hutong_department.py",
        description="Submit a department's NDJSON export to a Hutong gateway (hutong.v1.Ingest/Submit) "
        "over mutual TLS. The department is the identity its client certificate names in the "
        "gateway's policy. Prints one JSON line per record on stdout, a summary on stderr.",
        epilog="Each line is a wrapper {\"source_id\", \"revision\", \"op\", \"occurred_at\", \"charset\", "
        "\"payload\": {...} | \"payload_base64\": \"...\"} or, with --id-field and --revision-field, a bare "
        "payload object. Exit codes: 0 every record PUBLISHED or DUPLICATE; 1 any record REJECTED "
        "(or another status); 2 bad arguments or input, connection, TLS or identity refused, or another "
        "call-level error. Example: python hutong_department.py --gateway 127.0.0.1:50051 "
        "--ca .hutong/pki/ca.pem --cert .hutong/pki/gongan.pem --key .hutong/pki/gongan.key "
        "--kind household_registration schemas/departments/gongan/samples/household_registration.ndjson",
    )
    p.add_argument("file", metavar="FILE.ndjson", help="the export, one JSON record per line ('-': stdin)")
    p.add_argument("--gateway", required=True, metavar="HOST:PORT", help="the gateway's gRPC address, e.g. 127.0.0.1:50051")
    p.add_argument("--ca", required=True, metavar="CA.pem", help="CA certificate(s) that signed the gateway's certificate")
    p.add_argument("--cert", required=True, metavar="DEPT.pem", help="the department's client certificate (PEM)")
    p.add_argument("--key", required=True, metavar="DEPT.key", help="its private key (PEM)")
    p.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name to verify the gateway's certificate against, when it is not the host of --gateway",
    )
    p.add_argument("--kind", "-k", required=True, help="the department's record kind, e.g. household_registration")
    p.add_argument("--id-field", metavar="F", help="payload field holding the source id of bare payload lines")
    p.add_argument(
        "--revision-field",
        metavar="F",
        help="payload field holding the revision of bare payload lines: an integer, or a time (its Unix seconds)",
    )
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="records per Submit call (default 500)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="deadline of each call (default 120)")
    p.add_argument(
        "--stubs",
        type=Path,
        metavar="DIR",
        help="where to generate and keep the Python stubs (default: a temporary folder, removed at exit)",
    )
    p.add_argument(
        "--proto-dir",
        type=Path,
        default=DEFAULT_PROTO_DIR,
        metavar="DIR",
        help=f"the folder holding hutong/v1/ingest.proto (default: {DEFAULT_PROTO_DIR})",
    )
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")  # JSON lines are UTF-8 whatever the locale
    pb2, pb2_grpc = load_stubs(args.proto_dir.resolve(), args.stubs)
    import grpc

    try:
        records = read_export(args.file, args.kind, args.id_field, args.revision_field, pb2)
    except OSError as e:
        fail(f"cannot read {args.file}: {e.strerror}")
    except InputError as e:
        fail(str(e))

    check_identity(args)
    counts: dict[str, int] = {}
    answered = 0
    channel = make_channel(args)
    stub = pb2_grpc.IngestStub(channel)
    try:
        for n, start in enumerate(range(0, len(records), args.batch_size)):
            chunk = records[start : start + args.batch_size]
            request = pb2.SubmitRequest(batch_id=f"{args.file}#{n}", records=[rec for _, rec in chunk])
            try:
                response = stub.Submit(request, timeout=args.timeout)
            except grpc.RpcError as e:
                status, hint = call_error(e)
                print(f"hutong_department: error: {args.gateway}: {status}", file=sys.stderr)
                if hint:
                    print(f"hutong_department: hint: {hint}", file=sys.stderr)
                print(
                    f"hutong_department: {answered} of {len(records)} records were answered before",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            if len(response.results) != len(chunk):
                fail(f"the gateway answered {len(response.results)} of {len(chunk)} records of batch {n}")
            for r in sorted(response.results, key=lambda r: r.index):
                line = chunk[r.index][0] if r.index < len(chunk) else 0
                row = result_json(pb2, line, r)
                counts[row["status"]] = counts.get(row["status"], 0) + 1
                print(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            answered += len(chunk)
            sys.stdout.flush()
    finally:
        channel.close()

    ok = counts.get("PUBLISHED", 0) + counts.get("DUPLICATE", 0)
    others = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()) if k not in ("PUBLISHED", "DUPLICATE", "REJECTED"))
    print(
        f"{args.file}: {answered} records of kind {args.kind}: {counts.get('PUBLISHED', 0)} published, "
        f"{counts.get('REJECTED', 0)} rejected, {counts.get('DUPLICATE', 0)} duplicate" + (f", {others}" if others else ""),
        file=sys.stderr,
    )
    return EXIT_OK if ok == answered else EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
