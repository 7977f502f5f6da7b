"""Checks Hutong's deployment files offline, without a cluster, Docker or kustomize:

- every YAML document under deploy/k8s/ against the JSON schemas of a named Kubernetes version
  (KUBERNETES_VERSION, bundled by the PyPI package kubernetes-validate), in strict mode: an
  unknown field is an error, as kubectl's strict field validation makes it; Strimzi KafkaTopic
  and KafkaUser documents against the schemas transcribed from Strimzi's CRDs beside this file;
- every overlay's patches applied to the base it names (a strategic merge by this script: maps
  merged, lists of containers, env, volumes, volume mounts and ports merged by their keys, other
  lists replaced; for deploy/k8s/overlays/city it gives what `kubectl kustomize` 5.5 gives) and
  the patched documents validated the same way;
- every file under deploy/k8s named by a kustomization.yaml, every file a kustomization.yaml
  names present, the ConfigMap's hutong.toml equal to deploy/production/hutong.toml, the
  ConfigMaps, Secrets, Services and targets the workloads and their companions name present
  (Secrets in secrets-example/ or issued by Strimzi for a KafkaUser), and every container
  non-root with a read-only root file system, resources and readiness and liveness probes;
- deploy/compose.yaml against the Compose Specification's JSON schema (vendored beside this
  file), its dependencies, named volumes and mounted files present, its images pinned;
- deploy/Dockerfile: the runtime stage (the last) runs as a non-root USER, and every COPY from
  the build context names a path that exists and .dockerignore does not exclude.

Prints one line per document checked (`ok  <file> <kind>/<name>`), every error, and a summary;
exits 1 on any error.

usage: check_manifests.py [ROOT]   (ROOT holds deploy/; default: this repository)
"""
import fnmatch
import json
import pathlib
import re
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.version import __version__ as KUBERNETES_VALIDATE_VERSION

# The Kubernetes release the manifests are validated for (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.33.0"

HERE = pathlib.Path(__file__).resolve().parent
ROOT = pathlib.Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE.parent.parent
K8S = ROOT / "deploy" / "k8s"

errors = []
checked = 0
files_seen = set()


def rel(path):
    try:
        return str(pathlib.Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def ok(path, what):
    global checked
    checked += 1
    files_seen.add(rel(path))
    print(f"ok  {rel(path)} {what}")


def error(path, what, message):
    files_seen.add(rel(path))
    line = f"ERROR {rel(path)} {what}: {message}"
    if line not in errors:
        errors.append(line)


def ident(doc):
    if not isinstance(doc, dict):
        return "?/?"
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
    return f"{doc.get('kind', '?')}/{name}"


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing a key given twice in one mapping (it would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_all(path):
    try:
        return [d for d in yaml.load_all(pathlib.Path(path).read_text(encoding="utf-8"), Loader=StrictLoader)
                if d is not None]
    except yaml.YAMLError as e:
        error(path, "YAML", str(e).replace("\n", " "))
        return None


def schema_validator(name):
    schema = json.loads((HERE / name).read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


CRD_VALIDATORS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): schema_validator("strimzi_kafkatopic_v1beta2.schema.json"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): schema_validator("strimzi_kafkauser_v1beta2.schema.json"),
}


def where(path_parts):
    return ".".join(str(p) for p in path_parts) or "(document)"


failed = set()


def validate_resource(path, doc, note=""):
    """One Kubernetes or Strimzi document; True when valid (else noted in `failed`)."""
    valid = _validate_resource(path, doc, note)
    if not valid:
        failed.add(ident(doc))
    return valid


def _validate_resource(path, doc, note):
    what = ident(doc) + note
    if not isinstance(doc, dict) or not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
        error(path, what, "not a Kubernetes resource (apiVersion and kind)")
        return False
    crd = CRD_VALIDATORS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        found = sorted(crd.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in found:
            error(path, what, f"{where(e.absolute_path)}: {e.message}")
        if not found:
            ok(path, what)
        return not found
    if doc["apiVersion"].startswith("kafka.strimzi.io/"):
        error(path, what, f"no schema here for Strimzi {doc['apiVersion']} {doc['kind']}")
        return False
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        error(path, what, f"{where(e.path)}: {e.message} (Kubernetes {e.version}, strict)")
        return False
    except kubernetes_validate.SchemaNotFoundError as e:
        error(path, what, e.message)
        return False
    ok(path, what)
    return True


# ---------------------------------------------------------------- kustomizations

KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "metadata", "resources", "namespace", "namePrefix", "nameSuffix", "labels",
    "commonLabels", "commonAnnotations", "images", "patches", "configMapGenerator", "secretGenerator",
    "generatorOptions", "components", "replicas", "replacements", "buildMetadata", "sortOptions",
}
# What this script renders; anything else in an overlay would go unchecked, so it is refused.
RENDERED_KEYS = {"apiVersion", "kind", "metadata", "resources", "namespace", "images", "patches"}


def kustomization_files():
    return sorted(p for p in K8S.rglob("kustomization.yaml"))


def check_kustomization(path, doc):
    """The structure of one kustomization.yaml; returns the files it names (resolved)."""
    what = f"Kustomization/{rel(path.parent)}"
    named = set()
    if not isinstance(doc, dict):
        error(path, what, "not a mapping")
        return named
    if doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or doc.get("kind") != "Kustomization":
        error(path, what, "apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
    for key in doc:
        if key not in KUSTOMIZATION_KEYS:
            error(path, what, f"unknown field {key!r}")
        elif key not in RENDERED_KEYS:
            error(path, what, f"{key!r} is not rendered by this checker: its result would go unchecked")
    for entry in doc.get("resources") or []:
        target = (path.parent / entry).resolve()
        if target.is_dir():
            if target in path.parent.parents:
                error(path, what, f"resources: {entry}: contains this kustomization (kustomize refuses the cycle)")
            elif not (target / "kustomization.yaml").is_file():
                error(path, what, f"resources: {entry}: a directory without kustomization.yaml")
        elif target.is_file():
            named.add(target)
        else:
            error(path, what, f"resources: {entry}: no such file or directory")
    for i, patch in enumerate(doc.get("patches") or []):
        if not isinstance(patch, dict) or set(patch) != {"path"}:
            error(path, what, f"patches.{i}: only `path:` patches (strategic merge) are rendered here")
            continue
        target = (path.parent / patch["path"]).resolve()
        if target.is_file():
            named.add(target)
        else:
            error(path, what, f"patches.{i}: {patch['path']}: no such file")
    for i, image in enumerate(doc.get("images") or []):
        if not isinstance(image, dict) or "name" not in image or set(image) - {"name", "newName", "newTag", "digest"}:
            error(path, what, f"images.{i}: name with newName/newTag/digest")
    if not any(e.startswith("ERROR " + rel(path) + " ") for e in errors):
        ok(path, what)
    return named


# ---------------------------------------------------------------- rendering overlays

MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "imagePullSecrets": "name",
}


def merge(base, patch, key=None):
    """A strategic merge of `patch` onto `base` (a sufficient subset of Kubernetes' rules)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if "$patch" in patch:
            raise ValueError("$patch directives are not rendered here")
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list):
        mk = MERGE_KEYS.get(key)
        if key == "ports":
            mk = "containerPort" if all(isinstance(p, dict) and "containerPort" in p for p in base + patch) else "port"
        if mk and all(isinstance(x, dict) and mk in x for x in base + patch):
            out = [dict(x) for x in base]
            new = []
            for item in patch:
                at = next((i for i, x in enumerate(out) if x[mk] == item[mk]), None)
                if at is None:
                    new.append(item)
                else:
                    out[at] = merge(out[at], item)
            return new + out  # new items first, as kustomize puts them
        return patch
    return patch


def image_name(image):
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def render(kdir, stack=()):
    """The documents a kustomization directory builds: [(source file, document)]."""
    if kdir in stack:
        error(kdir / "kustomization.yaml", "Kustomization", "resources form a cycle")
        return []
    kfile = kdir / "kustomization.yaml"
    kdoc = (load_all(kfile) or [{}])[0]
    docs = []
    for entry in kdoc.get("resources") or []:
        target = (kdir / entry).resolve()
        if target.is_dir() and (target / "kustomization.yaml").is_file():
            docs += render(target, stack + (kdir,))
        elif target.is_file():
            docs += [(target, d) for d in (load_all(target) or [])]
    if kdoc.get("namespace"):
        for _, d in docs:
            if d.get("kind") != "Namespace":
                d.setdefault("metadata", {})["namespace"] = kdoc["namespace"]
    for image in kdoc.get("images") or []:
        for _, d in docs:
            pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                if isinstance(c.get("image"), str) and image_name(c["image"]) == image.get("name"):
                    new = image.get("newName", image["name"])
                    c["image"] = new + ("@" + image["digest"] if image.get("digest") else ":" + str(image.get("newTag", "latest")))
    for patch in kdoc.get("patches") or []:
        if not isinstance(patch, dict) or "path" not in patch:
            continue
        ppath = (kdir / patch["path"]).resolve()
        for pdoc in load_all(ppath) or []:
            what = ident(pdoc)
            at = next((i for i, (_, d) in enumerate(docs)
                       if d.get("kind") == pdoc.get("kind") and ident(d) == what), None)
            if at is None:
                error(ppath, what, f"the patch names no resource of {rel(kdir)}'s base")
                continue
            try:
                docs[at] = (ppath, merge(docs[at][1], pdoc))
            except ValueError as e:
                error(ppath, what, str(e))
    return docs


# ---------------------------------------------------------------- consistency of the base

def pod_specs(docs):
    for path, d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            yield path, d, ((d.get("spec") or {}).get("template") or {})


def check_consistency(docs, example_secrets):
    by_kind = {}
    for path, d in docs:
        by_kind.setdefault(d.get("kind"), {})[(d.get("metadata") or {}).get("name")] = (path, d)
    configmaps = by_kind.get("ConfigMap", {})
    secrets = {name: set(((d.get("stringData") or {}) | (d.get("data") or {})).keys())
               for name, (_, d) in example_secrets.items()}
    # Secrets Strimzi writes: one per KafkaUser (user.crt, user.key, …) and the cluster CA.
    for name, (_, d) in by_kind.get("KafkaUser", {}).items():
        secrets[name] = {"ca.crt", "user.crt", "user.key", "user.p12", "user.password"}
        cluster = ((d.get("metadata") or {}).get("labels") or {}).get("strimzi.io/cluster")
        if cluster:
            secrets[f"{cluster}-cluster-ca-cert"] = {"ca.crt", "ca.p12", "ca.password"}

    def need_configmap(path, what, name, keys):
        if name not in configmaps:
            error(path, what, f"ConfigMap {name} is not among the manifests")
            return
        have = set((configmaps[name][1].get("data") or {}).keys())
        for k in keys - have:
            error(path, what, f"ConfigMap {name} has no key {k!r}")

    def need_secret(path, what, name, keys):
        if name not in secrets:
            error(path, what, f"Secret {name} is neither in secrets-example/ nor issued by Strimzi for a KafkaUser")
            return
        for k in keys - secrets[name]:
            error(path, what, f"Secret {name} has no key {k!r}")

    pod_labels = []
    for path, d, template in pod_specs(docs):
        what = ident(d)
        labels = (template.get("metadata") or {}).get("labels") or {}
        pod_labels.append(labels)
        spec = template.get("spec") or {}
        pod_sc = spec.get("securityContext") or {}
        for v in spec.get("volumes") or []:
            sources = [v] + [s for s in ((v.get("projected") or {}).get("sources") or [])]
            for s in sources:
                if "configMap" in s:
                    cm = s["configMap"]
                    need_configmap(path, what, cm.get("name"), {i["key"] for i in cm.get("items") or []})
                if "secret" in s:
                    sec = s["secret"]
                    need_secret(path, what, sec.get("secretName", sec.get("name")), {i["key"] for i in sec.get("items") or []})
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            cwhat = f"{what} container {c.get('name')}"
            sc = c.get("securityContext") or {}
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
                error(path, cwhat, "not runAsNonRoot")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
                error(path, cwhat, "runAsUser is root or unset")
            if sc.get("readOnlyRootFilesystem") is not True:
                error(path, cwhat, "readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                error(path, cwhat, "allowPrivilegeEscalation is not false")
            res = c.get("resources") or {}
            if not (res.get("requests") or {}).get("cpu") or not (res.get("requests") or {}).get("memory"):
                error(path, cwhat, "no cpu and memory requests (the autoscaler needs them)")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    error(path, cwhat, f"no {probe}")
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    need_secret(path, cwhat, ref.get("name"), {ref.get("key")})
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    need_configmap(path, cwhat, ref.get("name"), {ref.get("key")})
        if d.get("kind") == "StatefulSet":
            svc = (d.get("spec") or {}).get("serviceName")
            found = by_kind.get("Service", {}).get(svc)
            if found is None or (found[1].get("spec") or {}).get("clusterIP") != "None":
                error(path, what, f"serviceName {svc}: no headless Service of that name")

    def selects_pods(selector):
        return any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels)

    for name, (path, d) in by_kind.get("Service", {}).items():
        sel = (d.get("spec") or {}).get("selector") or {}
        if not sel or not selects_pods(sel):
            error(path, ident(d), f"selector {sel} matches no workload's pods")
    for name, (path, d) in by_kind.get("PodDisruptionBudget", {}).items():
        sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not sel or not selects_pods(sel):
            error(path, ident(d), f"selector {sel} matches no workload's pods")
    for name, (path, d) in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = (d.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("name") not in by_kind.get(ref.get("kind"), {}):
            error(path, ident(d), f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not among the manifests")

    # The configuration the pods read is deploy/production/hutong.toml, word for word.
    production = ROOT / "deploy" / "production" / "hutong.toml"
    for name, (path, d) in configmaps.items():
        for key, text in (d.get("data") or {}).items():
            if key.endswith(".toml"):
                try:
                    tomllib.loads(text)
                except tomllib.TOMLDecodeError as e:
                    error(path, ident(d), f"data.{key}: not TOML: {e}")
        if name == "hutong-config":
            if not production.is_file():
                error(path, ident(d), f"{rel(production)} is missing")
            elif (d.get("data") or {}).get("hutong.toml") != production.read_text(encoding="utf-8"):
                error(path, ident(d), f"data.hutong.toml differs from {rel(production)}: copy it again")


def check_k8s():
    if not K8S.is_dir():
        error(K8S, "directory", "missing")
        return
    kfiles = kustomization_files()
    named, patches = set(), set()
    for kfile in kfiles:
        kdocs = load_all(kfile)
        if kdocs is None:
            continue
        if len(kdocs) != 1:
            error(kfile, "Kustomization", "one document expected")
            continue
        named |= check_kustomization(kfile, kdocs[0])
        for p in kdocs[0].get("patches") or [] if isinstance(kdocs[0], dict) else []:
            if isinstance(p, dict) and "path" in p:
                patches.add((kfile.parent / p["path"]).resolve())
    every = sorted(p.resolve() for p in K8S.rglob("*") if p.is_file())
    for f in every:
        if f.name != "kustomization.yaml" and f not in named:
            error(f, "file", "not named by any kustomization.yaml under deploy/k8s")
    # Every resource document on its own (patches are partial: checked once applied, below).
    base_docs, example_secrets = [], {}
    for f in every:
        if f.name == "kustomization.yaml" or f in patches or f.suffix not in (".yaml", ".yml"):
            continue
        docs = load_all(f)
        for d in docs or []:
            validate_resource(f, d)
            if not isinstance(d, dict):
                continue
            if f.parent.name == "secrets-example" and d.get("kind") == "Secret":
                example_secrets[(d.get("metadata") or {}).get("name")] = (f, d)
            elif "overlays" not in f.relative_to(K8S).parts:
                base_docs.append((f, d))
    # Overlays: the base with their patches, each patched document validated.
    for kfile in kfiles:
        kdocs = load_all(kfile) or [{}]
        if not isinstance(kdocs[0], dict) or not kdocs[0].get("patches"):
            continue
        for source, d in render(kfile.parent):
            # A patched document whose base is already refused would only repeat that error.
            if source in patches and ident(d) not in failed:
                validate_resource(source, d, f" (patched onto {rel(kfile.parent)})")
    check_consistency(base_docs, example_secrets)


# ---------------------------------------------------------------- compose

def check_compose():
    path = ROOT / "deploy" / "compose.yaml"
    docs = load_all(path)
    if docs is None:
        return
    if len(docs) != 1 or not isinstance(docs[0], dict):
        error(path, "Compose", "one mapping expected")
        return
    doc = docs[0]
    what = f"Compose/{doc.get('name', '?')}"
    before = len(errors)
    validator = schema_validator("compose_spec.schema.json")
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        error(path, what, f"{where(e.absolute_path)}: {e.message}")
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        swhat = f"{what} service {name}"
        deps = svc.get("depends_on") or {}
        for dep in (deps if isinstance(deps, (list, dict)) else []):
            if dep not in services:
                error(path, swhat, f"depends_on {dep}: no such service")
        for v in svc.get("volumes") or []:
            source = v.split(":", 1)[0] if isinstance(v, str) else (v.get("source") or "")
            if source.startswith((".", "/")):
                if not (path.parent / source).exists():
                    error(path, swhat, f"volume source {source}: no such file or directory")
                elif source.endswith(".toml"):
                    try:
                        tomllib.loads((path.parent / source).read_text(encoding="utf-8"))
                    except tomllib.TOMLDecodeError as e:
                        error(path, swhat, f"{source}: not TOML: {e}")
            elif source and source not in volumes:
                error(path, swhat, f"volume {source} is not declared under volumes")
        build = svc.get("build")
        if isinstance(build, dict):
            context = path.parent / build.get("context", ".")
            if not context.is_dir():
                error(path, swhat, f"build context {build.get('context')}: no such directory")
            elif not (context / build.get("dockerfile", "Dockerfile")).is_file():
                error(path, swhat, f"build dockerfile {build.get('dockerfile')}: no such file")
        image = svc.get("image")
        if isinstance(image, str) and "build" not in svc:
            tag = image.rsplit("/", 1)[-1]
            if ":" not in tag or tag.endswith(":latest"):
                error(path, swhat, f"image {image} is not pinned to a version")
    if len(errors) == before:
        ok(path, what)


# ---------------------------------------------------------------- Dockerfile

def dockerignore_patterns():
    ignore = ROOT / ".dockerignore"
    if not ignore.is_file():
        return []
    out = []
    for line in ignore.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        out.append((negate, pattern.strip("/")))
    return out


def ignored(relpath, patterns):
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, pattern in patterns:
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            result = not negate
    return result


def check_dockerfile():
    path = ROOT / "deploy" / "Dockerfile"
    if not path.is_file():
        error(path, "Dockerfile", "missing")
        return
    lines, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    stages = []  # [name, [(instruction, args)]]
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
            stages.append([name, []])
        elif stages:
            stages[-1][1].append((instruction, args.strip()))
        elif instruction not in ("ARG",):
            error(path, "Dockerfile", f"{instruction} before the first FROM")
    if not stages:
        error(path, "Dockerfile", "no FROM")
        return
    before = len(errors)
    patterns = dockerignore_patterns()
    names = [s[0] for s in stages]
    for index, (stage, instructions) in enumerate(stages):
        for instruction, args in instructions:
            if instruction not in ("COPY", "ADD"):
                continue
            if args.startswith("["):
                words = json.loads(args)
            else:
                words = args.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage is not None:
                if source_stage not in names[:index] and ":" not in source_stage and "/" not in source_stage:
                    error(path, f"Dockerfile/{stage}", f"COPY --from={source_stage}: no earlier stage of that name")
                continue
            for source in paths[:-1]:
                if not (ROOT / source).exists():
                    error(path, f"Dockerfile/{stage}", f"{instruction} {source}: not in the build context (the repository root)")
                elif ignored(source, patterns):
                    error(path, f"Dockerfile/{stage}", f"{instruction} {source}: excluded by .dockerignore")
    runtime, instructions = stages[-1]
    users = [args for instruction, args in instructions if instruction == "USER"]
    if not users:
        error(path, f"Dockerfile/{runtime}", "the runtime stage sets no USER: it would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        error(path, f"Dockerfile/{runtime}", f"the runtime stage runs as USER {users[-1]}")
    if not any(instruction == "ENTRYPOINT" for instruction, _ in instructions):
        error(path, f"Dockerfile/{runtime}", "the runtime stage has no ENTRYPOINT")
    if not (ROOT / ".dockerignore").is_file():
        error(ROOT / ".dockerignore", "file", "missing: the build context would carry target/ and .git")
    if len(errors) == before:
        ok(path, f"Dockerfile/{runtime} (USER {users[-1]})")


check_k8s()
check_compose()
check_dockerfile()
for e in errors:
    print(e)
print(f"{checked} documents valid in {len(files_seen)} files, {len(errors)} errors "
      f"(Kubernetes {KUBERNETES_VERSION} strict, kubernetes-validate {KUBERNETES_VALIDATE_VERSION}, "
      f"Strimzi v1beta2 CRDs, Compose Specification)")
sys.exit(1 if errors else 0)
