"""deploy/: the Kubernetes manifests and the compose file, linted and cross-checked.

No cluster and no container engine run here, so this is what can be known without one:
yamllint on every file; every Kubernetes resource against the API's own schemas (strict:
an unknown field is an error) with kubernetes-validate, which bundles them (offline); and
what schemas cannot see: selectors that match the pods, ports and probe paths the app serves,
environment names that are settings, commands the CLI accepts, secrets and volumes that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # oldest still commonly run .. newest bundled
NOT_SETTINGS = {"HOME"}  # the only non-OIRL variable set: library caches follow it into a writable volume


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def kustomization() -> dict:
    return load(K8S / "kustomization.yaml")


def resources() -> dict[str, dict]:
    """kind -> the one resource of that kind (this set has one of each)."""
    out = {}
    for name in kustomization()["resources"]:
        doc = load(K8S / name)
        assert doc["kind"] not in out, f"two {doc['kind']}s"
        out[doc["kind"]] = doc
    return out


def pod(res=None) -> dict:
    return (res or resources())["Deployment"]["spec"]["template"]


def containers(res=None) -> list[dict]:
    spec = pod(res)["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def api_container(res=None) -> dict:
    (c,) = pod(res)["spec"]["containers"]
    return c


def cli_params(argv: list[str]) -> tuple[str, dict]:
    """Parse an `oirl ...` command line as the CLI would, without running it: (command, options)."""
    from oirl.cli import app

    assert argv[0] == "oirl", argv
    cmd, args = typer.main.get_command(app), list(argv[1:])
    while hasattr(cmd, "commands"):  # a group (typer's click classes, which may not be the installed click's)
        sub = cmd.get_command(cmd.context_class(cmd), args[0])
        assert sub is not None, f"no command {args[0]!r} in {argv}"
        cmd, args = sub, args[1:]
    return cmd.name, cmd.make_context(cmd.name, args).params  # raises on an unknown option


def settings_fields() -> set[str]:
    from oirl.settings import Settings

    return {f"OIRL_{name.upper()}" for name in Settings.model_fields}


def app_paths() -> set[str]:
    from app.main import create_app
    from oirl.settings import Settings

    return set(create_app(Settings()).openapi()["paths"])  # no lifespan: nothing starts


# ------------------------------------------------------------------ linters


def test_yamllint_finds_nothing_in_deploy():
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(DEPLOY / "yamllint.yaml"))
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 9
    problems = [f"{f.relative_to(ROOT)}:{p.line}: {p.desc} ({p.rule})"
                for f in files for p in linter.run(f.read_text(), config, str(f))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(version):
    import kubernetes_validate

    for name in kustomization()["resources"]:
        kubernetes_validate.validate(load(K8S / name), version, strict=True)


def test_the_schema_check_is_not_a_no_op():
    import kubernetes_validate

    broken = load(K8S / "deployment.yaml")
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomize_renders_the_set_and_every_rendered_resource_validates():
    """What a cluster would be sent: kustomize's own rendering (images, labels applied), where a
    kubectl is installed (its kustomize is built in); the schemas above only saw the files one by one."""
    import shutil
    import subprocess

    import kubernetes_validate

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize renders the set)")
    run = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    rendered = [d for d in yaml.safe_load_all(run.stdout) if d]
    assert sorted(d["kind"] for d in rendered) == sorted(resources())
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
    (image,) = kustomization()["images"]
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    tag = f"{image.get('newName', image['name'])}:{image['newTag']}" if "newTag" in image else None
    if tag:
        assert {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]} == {tag}


def test_the_kustomization_lists_every_manifest_and_names_the_image():
    k = kustomization()
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == on_disk
    (image,) = k["images"]
    assert {c["image"] for c in containers()} == {image["name"]}


# ------------------------------------------------------- cross-references


def test_selectors_match_the_pods():
    res = resources()
    labels = pod(res)["metadata"]["labels"]
    deploy = res["Deployment"]["spec"]
    assert deploy["selector"]["matchLabels"].items() <= labels.items()
    assert res["Service"]["spec"]["selector"].items() <= labels.items()
    assert res["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for constraint in pod(res)["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


def test_replicas_and_one_worker_per_pod():
    res = resources()
    assert res["Deployment"]["spec"]["replicas"] == 3
    assert res["ConfigMap"]["data"]["OIRL_WORKERS"] == "1"
    assert res["PodDisruptionBudget"]["spec"]["maxUnavailable"] < res["Deployment"]["spec"]["replicas"]


def test_ports_and_probes_hit_what_the_app_serves():
    c = api_container()
    command, params = cli_params(c["command"])
    assert command == "serve" and params["workers"] == 1 and params["host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": params["port"]}
    assert f"EXPOSE {params['port']}" in (ROOT / "Dockerfile").read_text()
    assert resources()["Service"]["spec"]["ports"][0]["targetPort"] in ports
    paths = app_paths()
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"  # ready only with the champion loaded
    assert probes["livenessProbe"]["path"] == "/healthz"  # a store outage must not restart pods
    for probe in probes.values():
        assert probe["path"] in paths and probe["port"] in ports
    # Startup may take minutes (encoder export, torch import): liveness must not act before.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180


def test_migrations_run_before_the_server():
    (init,) = pod()["spec"]["initContainers"]
    assert cli_params(init["command"]) == ("upgrade", {"revision": "head"})


def test_every_environment_name_is_a_setting_with_a_valid_value():
    from oirl.settings import Settings

    res = resources()
    fields = settings_fields()
    config = res["ConfigMap"]["data"]
    names = set(config)
    for c in containers(res):
        assert [e["configMapRef"]["name"] for e in c.get("envFrom", [])] == [res["ConfigMap"]["metadata"]["name"]]
        names |= {e["name"] for e in c.get("env", [])}
    unknown = {n for n in names - NOT_SETTINGS if n not in fields}
    assert not unknown, f"not settings (oirl.settings.Settings): {unknown}"
    # The values parse as the settings class parses the environment (types, ranges, literals).
    Settings(**{n.removeprefix("OIRL_").lower(): v for n, v in config.items()})


def test_secret_references_exist_and_hold_placeholders_only():
    res = resources()
    secret = res["Secret"]
    refs = [e["valueFrom"]["secretKeyRef"] for c in containers(res) for e in c.get("env", []) if "valueFrom" in e]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} == set(secret["stringData"])
    assert all("CHANGE-ME" in v for v in secret["stringData"].values())


def test_volumes_the_settings_point_at_are_mounted_and_shared():
    res = resources()
    spec, c = pod(res)["spec"], api_container(res)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert {m["name"] for m in c["volumeMounts"]} <= set(volumes)
    claim = res["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    config = res["ConfigMap"]["data"]
    for setting in ("OIRL_ARTEFACT_DIR", "OIRL_ENCODER_DIR"):  # one volume for every pod
        mount = mounts[config[setting]]
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    home = mounts[config["OIRL_HOME"]]  # per pod: SQLite caches stay off the network volume
    assert "emptyDir" in volumes[home["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]  # the root file system is read-only


def test_pods_run_as_the_images_non_root_user():
    spec = pod()["spec"]
    uid = int(re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == uid
    for c in containers():
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert "memory" in c["resources"]["limits"]


# ----------------------------------------------------------------- compose


def compose() -> dict:
    return load(DEPLOY / "compose.yaml")


def test_compose_runs_the_migration_once_before_the_replicas():
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "oirl", "lb"}
    assert cli_params(services["migrate"]["command"]) == ("upgrade", {"revision": "head"})
    assert services["migrate"]["restart"] == "no"
    oirl = services["oirl"]
    assert oirl["deploy"]["replicas"] == 3
    assert oirl["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["lb"]["depends_on"]["oirl"]["condition"] == "service_healthy"
    assert services["migrate"]["image"] == oirl["image"]  # the image the Dockerfile builds
    assert services["migrate"]["build"]["context"] == ".."
    assert (DEPLOY / services["migrate"]["build"]["context"] / "Dockerfile").is_file()


def test_compose_replicas_share_one_volume_and_sit_behind_the_balancer():
    doc = compose()
    services = doc["services"]
    oirl = services["oirl"]
    assert "ports" not in oirl  # replicas cannot share a host port: the balancer publishes one
    _, params = cli_params(oirl["command"])
    assert params["workers"] == 1 and params["host"] == "0.0.0.0"
    (mount,) = oirl["volumes"]
    volume, path = mount.split(":")
    assert volume in doc["volumes"]
    env = oirl["environment"]
    for setting in ("OIRL_HOME", "OIRL_ARTEFACT_DIR", "OIRL_ENCODER_DIR"):
        assert env[setting].startswith(path), setting
    assert f"http://127.0.0.1:{params['port']}/readyz" in oirl["healthcheck"]["test"]
    assert "/readyz" in app_paths()
    (conf_mount,) = services["lb"]["volumes"]
    conf = (DEPLOY / conf_mount.split(":")[0]).read_text()
    assert f"server oirl:{params['port']}" in conf and "proxy_pass http://oirl;" in conf


def test_compose_environment_names_are_settings():
    from oirl.settings import Settings

    services = compose()["services"]
    fields = settings_fields()
    for name in ("migrate", "oirl"):
        env = services[name]["environment"]
        assert set(env) <= fields, set(env) - fields
        Settings(**{n.removeprefix("OIRL_").lower(): v for n, v in env.items() if "${" not in v})
