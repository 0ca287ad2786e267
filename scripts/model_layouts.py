"""Write harness/models/layouts.json: the variable layouts of real architectures.

Builds each architecture offline with freshly initialised weights (no weights, presets
or tokenizers are downloaded) and records, per variable, Keras's variable path, its
shape, dtype and trainable flag, plus the parameter count and bytes. The harness reads
only the JSON; Keras applications and keras_hub are needed here, never at run time.

    nice -n 19 python scripts/model_layouts.py [--out harness/models/layouts.json] [--only NAME ...]

Building GPT-2-large allocates its ~3 GiB of float32 weights once; run under nice.
The keras_hub backbones take the sizes published with the original models (the
preset configurations, written out below, since the presets themselves are downloads).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

FORMAT = "ckpt-harness-model-layouts"
FORMAT_VERSION = 1
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "harness", "models", "layouts.json")

# Published sizes (GPT-2: Radford et al. 2019 and the released configs; BERT: Devlin et al. 2018).
_GPT2 = dict(vocabulary_size=50257, max_sequence_length=1024)
_BERT_BASE = dict(vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
                  intermediate_dim=3072, max_sequence_length=512, num_segments=2)


def _app(name):
    def build():
        import keras
        return getattr(keras.applications, name)(weights=None)
    return build, f"keras.applications.{name}(weights=None)"


def _hub(cls_name, **config):
    def build():
        import keras_hub
        return getattr(keras_hub.models, cls_name)(**config)
    args = ", ".join(f"{k}={v}" for k, v in config.items())
    return build, f"keras_hub.models.{cls_name}({args})"


# CLI name -> (builder, how it was built, a one-line description)
MODELS = {
    "mobilenetv3small": (*_app("MobileNetV3Small"), "MobileNetV3-Small image classifier, 224x224, 1000 classes"),
    "efficientnetb0": (*_app("EfficientNetB0"), "EfficientNet-B0 image classifier, 224x224, 1000 classes"),
    "resnet50": (*_app("ResNet50"), "ResNet-50 image classifier, 224x224, 1000 classes"),
    "vgg16": (*_app("VGG16"), "VGG-16 image classifier, 224x224, 1000 classes (few, large variables)"),
    "bert-base": (*_hub("BertBackbone", **_BERT_BASE), "BERT-base encoder (uncased vocabulary), no task head"),
    "gpt2-base": (*_hub("GPT2Backbone", num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072,
                        **_GPT2), "GPT-2 base (124M) decoder, no LM head (tied to the embedding)"),
    "gpt2-medium": (*_hub("GPT2Backbone", num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096,
                          **_GPT2), "GPT-2 medium (355M) decoder, above 1 GiB of float32 state"),
    "gpt2-large": (*_hub("GPT2Backbone", num_layers=36, num_heads=20, hidden_dim=1280, intermediate_dim=5120,
                         **_GPT2), "GPT-2 large (774M) decoder, about 3 GiB of float32 state"),
}

_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8}


def _reserved_names() -> list[str]:
    """Public attribute names of the classes the adapters hang variables and scopes on
    (tf.Module, Keras 3 Layer and Model, and tf_keras's for `run --keras 2` where installed):
    a scope or variable named like one of them would shadow it, so the harness renames such
    components."""
    import keras
    import tensorflow as tf

    classes = [tf.Module, keras.layers.Layer, keras.Model]
    try:
        import tf_keras
        classes += [tf_keras.layers.Layer, tf_keras.Model]
    except ImportError:
        pass
    names = set()
    for cls in classes:
        names.update(n for n in dir(cls) if not n.startswith("_"))
    return sorted(names)


def describe(model) -> dict:
    variables = []
    params = nbytes = 0
    for v in model.weights:
        shape = [int(d) for d in v.shape]
        dtype = str(v.dtype)
        if dtype not in _ITEMSIZE:
            raise SystemExit(f"unexpected dtype {dtype} in {v.path}")
        size = 1
        for d in shape:
            size *= d
        params += size
        nbytes += size * _ITEMSIZE[dtype]
        variables.append([v.path, shape, dtype, bool(v.trainable)])
    return {"params": params, "bytes": nbytes, "n_vars": len(variables), "variables": variables}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--only", action="append", choices=sorted(MODELS), help="rebuild these, keep the rest of --out")
    a = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import keras_hub
    import tensorflow as tf

    models = {}
    if a.only and os.path.exists(a.out):
        with open(a.out) as f:
            models = json.load(f)["models"]
    for name, (build, source, text) in MODELS.items():
        if a.only and name not in a.only:
            continue
        t0 = time.perf_counter()
        model = build()
        entry = {"description": text, "source": source, **describe(model)}
        del model
        keras.backend.clear_session()
        gc.collect()
        models[name] = entry
        print(f"{name:<18} {entry['n_vars']:>5} variables {entry['params']:>12,} params "
              f"{entry['bytes'] / 2**20:>9.1f} MiB  ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generated_by": "scripts/model_layouts.py",
        "versions": {"keras": keras.__version__, "keras_hub": keras_hub.__version__,
                     "tensorflow": tf.__version__, "python": platform.python_version()},
        "reserved_names": _reserved_names(),
        "models": {k: models[k] for k in MODELS if k in models},
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        _dump(doc, f)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


def _dump(doc: dict, f) -> None:
    """JSON with one line per variable, so a diff of two layouts reads line by line."""
    head = {k: v for k, v in doc.items() if k not in ("models", "reserved_names")}
    text = json.dumps(head, indent=1)[:-2]
    f.write(text + ',\n "reserved_names": ' + json.dumps(doc["reserved_names"]) + ',\n "models": {\n')
    for i, (name, m) in enumerate(doc["models"].items()):
        meta = {k: v for k, v in m.items() if k != "variables"}
        f.write(f"  {json.dumps(name)}: {json.dumps(meta)[:-1]}, \"variables\": [\n")
        f.write(",\n".join("   " + json.dumps(v) for v in m["variables"]))
        f.write("\n  ]}" + ("," if i < len(doc["models"]) - 1 else "") + "\n")
    f.write(" }\n}\n")


if __name__ == "__main__":
    sys.exit(main())
