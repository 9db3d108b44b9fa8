"""MLServer's custom runtime for ONNX models, on onnxruntime (runs inside MLServer only).

Written against MLServer's documented runtime API: `MLModel.load` opens the model file named
by `parameters.uri`, `MLModel.predict` decodes each V2 input with the NumPy codec, runs the
session and encodes each output back. Errors a client or the deploy must read are raised as
MLServer errors, which MLServer answers with their message (HTTP 400), not a bare 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor, RequestOutput
from mlserver.utils import get_model_uri

from bot.serving import sessions

WELLKNOWN_FILENAMES = ["model.onnx"]

# onnxruntime's tensor type names -> the V2 protocol's datatypes (what /v2/models/<name> shows)
_V2_TYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}
_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def _metadata(args: list[Any]) -> list[MetadataTensor]:
    return [
        MetadataTensor(
            name=a.name,
            datatype=_V2_TYPES.get(a.type, "BYTES"),
            shape=[d if isinstance(d, int) else -1 for d in (a.shape or [])],
        )
        for a in args
    ]


class OnnxRuntime(MLModel):  # type: ignore[misc]  # MLServer ships no type information
    _key: sessions.Key | None = None
    async def load(self) -> bool:
        path = await get_model_uri(self.settings, wellknown_filenames=WELLKNOWN_FILENAMES)
        self._key, self._session = sessions.open_session(path)
        self._inputs = {a.name: a.type for a in self._session.get_inputs()}
        self._outputs = [a.name for a in self._session.get_outputs()]
        self.inputs = _metadata(self._session.get_inputs())
        self.outputs = _metadata(self._session.get_outputs())
        return True

    async def unload(self) -> bool:
        if self._key is not None:  # None: a load that failed opened nothing
            sessions.close_session(self._key)
            self._key = None
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for request_input in payload.inputs:
            if request_input.name not in self._inputs:
                raise InferenceError(f"unknown input {request_input.name!r}; the model takes {', '.join(self._inputs)}")
            value = self.decode(request_input, default_codec=NumpyCodec)
            feeds[request_input.name] = _as_model_type(np.asarray(value), self._inputs[request_input.name])
        missing = [name for name in self._inputs if name not in feeds]
        if missing:
            raise InferenceError(f"missing input {', '.join(missing)}")
        names = [o.name for o in payload.outputs] if payload.outputs else self._outputs
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise InferenceError(f"unknown output {', '.join(unknown)}; the model gives {', '.join(self._outputs)}")
        try:
            results = self._session.run(names, feeds)
        except Exception as exc:  # a shape or type the model refuses: the client's to fix
            raise InferenceError(str(exc)) from None
        outputs = [
            self.encode(np.asarray(result), RequestOutput(name=name), default_codec=NumpyCodec)
            for name, result in zip(names, results, strict=True)
        ]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)


def _as_model_type(value: np.ndarray, onnx_type: str) -> np.ndarray:
    """JSON numbers carry no width: an FP64 request for an FP32 input is cast, as a client means."""
    if onnx_type == "tensor(string)":  # onnxruntime takes Python str objects; V2 BYTES decode as bytes
        return np.char.decode(value, "utf-8").astype(object) if value.dtype.kind == "S" else value.astype(object)
    wanted = _NUMPY_TYPES.get(onnx_type)
    if wanted is None or value.dtype == wanted:
        return value
    if np.can_cast(value.dtype, wanted, casting="same_kind"):  # never a float into an integer
        return value.astype(wanted)
    return value  # onnxruntime names the mismatch
