"""What a person reads about the KServe target (bot.deploy.targets.kserve*)."""

from __future__ import annotations

KSERVE_EXTRA = "pip install 'aimodel-gitops[kserve]'"


def not_onnx(model: str, fmt: str) -> str:
    return f"{model} is {fmt}: the KServe target serves ONNX models only"


def bad_isvc_name(model: str) -> str:
    return (
        f"{model} cannot name an InferenceService: KServe needs a name that starts with a letter "
        "(rename the model, or keep this environment on target: local)"
    )


def storage_unreadable(model: str, uri: str) -> str:
    return (
        f"the cluster cannot read {model}'s bytes at {uri}: set environments.<env>.kserve.storage_uri "
        "to the artifact store as the cluster reads it (s3://, gs://, pvc://, https://)"
    )


def not_ready(model: str, version: str, reason: str) -> str:
    return f"{model} {version} did not become Ready: {reason}; the previous release was restored"


def ready_timeout(seconds: int) -> str:
    return f"not Ready within {seconds} s"


def apply_refused(what: str, reason: str) -> str:
    return f"the cluster refused {what}: {reason}"


def cluster_unreachable(why: str) -> str:
    return f"cannot reach the Kubernetes cluster ({why}); nothing was changed"


def extra_missing() -> str:
    return f"target: kserve with mode: apply needs the kubernetes client: {KSERVE_EXTRA}"


def push_refused(branch: str, why: str) -> str:
    return (
        f"cannot commit the rendered release to {branch}: {why} "
        "(a protected branch? set environments.<env>.kserve.branch to a branch the bot may push)"
    )


def committed(commit: str, branch: str) -> str:
    return f"committed {commit[:10]} to {branch}; the GitOps engine syncs it (health needs cluster access: kserve.context)"


def no_settings(env: str) -> str:
    return f"environment {env} is not configured with target: kserve"


def repo_unreadable() -> str:
    return "cannot read the deploy folder from the manifest repository (fetch failed); nothing was changed"


def canary(percent: int, version: str) -> str:
    return f"canary: {percent}% of requests to {version}, the rest to the previous version"


def not_synced(commit: str, why: str) -> str:
    return f"committed {commit[:10]}; the cluster does not run it yet ({why})"


def no_clone() -> str:
    return "mode: gitops needs the manifest repository's clone to commit to; nothing was changed"


def bad_canary(model: str, percent: int) -> str:
    return f"canary {model}={percent}: name a model of this release and a percent from 0 to 100"


def cannot_place(model: str, why: str) -> str:
    return f"cannot place {model}'s verified bytes where the cluster reads them: {why}"


def engine_behind() -> str:
    return "the GitOps engine has not synced it"
