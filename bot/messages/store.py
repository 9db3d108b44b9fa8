"""What a person reads about the artifact store (bot.store): the bytes the registry keeps."""

from __future__ import annotations

REMOTE_EXTRA = "pip install 'aimodel-gitops[remote]'"


def backend_missing(url: str, package: str) -> str:
    return (
        f"AIMODEL_ARTIFACT_STORE={url} needs the {package or 'fsspec backend'} package: "
        f"install the remote extra ({REMOTE_EXTRA})"
    )


def store_unusable(url: str, why: str) -> str:
    return f"AIMODEL_ARTIFACT_STORE={url} cannot be used: {why}"


def object_missing(digest: str) -> str:
    return (
        f"the stored object sha256/{digest} is missing from the artifact store "
        "(AIMODEL_ARTIFACT_STORE); register the artifact again with `aimodel update`"
    )


def object_tampered(digest: str) -> str:
    return (
        f"the stored object sha256/{digest} does not match its digest: it was changed or damaged "
        "in the artifact store; refusing to use it (restore it, or register the artifact again)"
    )


def store_unreadable(digest: str, why: str) -> str:
    return f"cannot read the stored object sha256/{digest}: {why}"


def cannot_keep(kind: str, uri: str, why: str) -> str:
    return f"cannot keep {kind} {uri} in the artifact store: {why}"


def note_too_big(key: str, limit: int) -> str:
    return f"the artifact store's {key} is larger than {limit >> 20} MiB: it is not a signature or an attestation"


def folder_link(path: str) -> str:
    return f"the model folder holds a link to a folder ({path}); copy the folder without links (cp -rL) and register the copy"


def folder_bad_name(path: str) -> str:
    return f"the model folder holds a file whose name cannot be kept ({path[:120]!r})"


def folder_too_many(limit: int) -> str:
    return f"the model folder holds more than {limit} files; a model folder is its config, tokenizer and weights"


def folder_empty() -> str:
    return "the model folder holds no file"


def not_a_file_list(why: str) -> str:
    return f"the stored file list of a folder model is damaged: {why}; register the folder again"


def folder_needs_store() -> str:
    return "a model folder is kept file by file in the artifact store, and this process has none"



def dataset_is_folder(uri: str) -> str:
    return f"data set {uri} is a folder; a data set is one file (give the CSV or Parquet file)"
