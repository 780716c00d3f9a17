"""What the app knows about one run: data sets, filter results, files, all read lazily.

Nothing here imports a web framework; :mod:`thresher.app.server` turns these answers into HTTP.
Every lookup that a request can drive goes through a server-side table (sample ids of the run's
own data set, filter tags found under ``RUN/filter``, files found under ``RUN/diagnose`` and
``RUN/reduce``), so no text from a client ever becomes a file-system path.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thresher.app.grid import GridFrame, empty_frame, join, query, row_dict
from thresher.data import ImageDataset
from thresher.errors import ConfigError, RunError
from thresher.store import Run
from thresher.workflows.filter import load_filter
from thresher.workflows.run import open_run, run_dataset

SPLITS = ("train", "test")
AREAS = ("diagnose", "reduce")
AREA_SUFFIXES = (".json", ".png", ".parquet", ".csv")
# Codes 0..3 in the cloud payload; label issues are drawn with "other" (removed, not a
# geometric outlier or duplicate) and counted on their own.
GROUPS = ("kept", "outlier", "similar", "other")
TABLE_ROWS = 200  # rows of a table file shown in a view


class NotFoundError(LookupError):
    """A well-formed request for something the run does not hold (an HTTP 404)."""


@dataclass(frozen=True)
class FilterView:
    """One stored filter result, aligned to the train split."""

    tag: str
    ids: np.ndarray  # (N,) str
    index: dict[str, int]  # id -> row
    kept: np.ndarray  # (N,) bool
    reason: np.ndarray  # (N,) str
    group: np.ndarray  # (N,) uint8 code into GROUPS
    score: np.ndarray  # (N,) float
    outlier_score: np.ndarray  # (N,) float
    representative_id: np.ndarray  # (N,) str
    labels: np.ndarray | None  # (N,) int
    coords: np.ndarray | None  # (N, 3) float32, None when no 3D view was stored
    params: dict[str, Any]


class RunState:
    """Lazy, thread-safe access to one run directory for the app."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run: Run = open_run(run_dir)
        self._lock = threading.RLock()
        self._datasets: dict[str, tuple[ImageDataset, dict[str, int]]] = {}
        self._filters: dict[str, tuple[float, FilterView]] = {}
        self._embeddings: dict[str, Any] = {}
        self._row_norms: dict[str, np.ndarray] = {}
        self._labels: tuple[float, Any, dict[str, int]] | None = None
        self._frames: dict[tuple[str, str | None], tuple[tuple[float, ...], GridFrame]] = {}
        self._sections: dict[str, tuple[tuple[float, ...], list[Any]]] = {}
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._relevance: dict[tuple[str, str, int], bytes] = {}

    # --- data sets --------------------------------------------------------------------------
    def dataset(self, split: str) -> tuple[ImageDataset, dict[str, int]]:
        """The run's own ``split`` and its id -> row table (loaded once)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        with self._lock:
            if split not in self._datasets:
                ds = run_dataset(self.run, split)
                self._datasets[split] = (ds, {str(s): i for i, s in enumerate(ds.ids)})
            return self._datasets[split]

    def class_name(self, label: int | None) -> str | None:
        classes = self.run.config.get("classes", [])
        if label is None or not 0 <= label < len(classes):
            return None
        return str(classes[label])

    def image_png(self, split: str, sample_id: str) -> bytes:
        """PNG bytes of sample ``sample_id``; only ids of the run's own data set exist."""
        ds, index = self.dataset(split)
        row = index.get(sample_id)
        if row is None:
            raise NotFoundError(f"no sample {sample_id!r} in the {split} split of this run")
        image = np.asarray(ds.images[row])
        from thresher.data.detection import DetectionDataset

        if isinstance(ds, DetectionDataset):  # a detection set: its boxes are part of the image
            from thresher.app.boxes import draw_boxes

            if image.dtype != np.uint8:
                image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            boxes, labels = ds.targets(row)
            image = draw_boxes(image, boxes, labels, ds.classes)
        return encode_png(image)

    def overview(self) -> dict[str, Any]:
        from thresher.data.info import dataset_info

        man = self.run.manifest
        splits: dict[str, Any] = {}
        for split in SPLITS:
            try:
                splits[split] = dataset_info(self.dataset(split)[0])
            except Exception as exc:  # the overview degrades: say why a split is missing
                splits[split] = {"error": str(exc)}
        metrics = (
            self.run.read_json("test_metrics.json")
            if self.run.exists("test_metrics.json")
            else None
        )
        return {
            "run": str(self.run.path),
            "created": man.get("created"),
            "thresher_version": man.get("thresher_version"),
            "model": man["config"].get("model", {}),
            "data": man["config"].get("data", {}),
            "classes": man["config"].get("classes", []),
            "steps": self.run.steps(),
            "splits": splits,
            "test_accuracy": None if metrics is None else metrics.get("accuracy"),
            "areas": {a: bool(self.area_files(a)) for a in AREAS},
            "filters": len(self.filter_tags()),
        }

    def samples(self, split: str, per_class: int, seed: int = 0) -> dict[str, Any]:
        """Up to ``per_class`` ids of each class (seeded choice) for the sample grids."""
        ds, _ = self.dataset(split)
        rng = np.random.default_rng(seed)
        groups: list[dict[str, Any]] = []
        if ds.labels is None:
            pick = rng.choice(len(ds), size=min(per_class * 10, len(ds)), replace=False)
            groups.append({"class": "all", "ids": [str(ds.ids[i]) for i in sorted(pick)]})
        else:
            for c, name in enumerate(ds.classes):
                rows = np.flatnonzero(ds.labels == c)
                pick = rng.choice(rows, size=min(per_class, len(rows)), replace=False)
                groups.append({"class": name, "ids": [str(ds.ids[i]) for i in sorted(pick)]})
        return {"split": split, "groups": groups}

    # --- filter results ---------------------------------------------------------------------
    def filter_tags(self) -> list[str]:
        """Tags of the stored filter results (newest first)."""
        root = self.run.file("filter")
        if not root.is_dir():
            return []
        found = [p for p in root.iterdir() if (p / "result.parquet").is_file()]
        found.sort(key=lambda p: (p / "result.parquet").stat().st_mtime, reverse=True)
        return [p.name for p in found]

    def latest_tag(self) -> str | None:
        if not self.run.exists("filter/latest.json"):
            return None
        tag = str(self.run.read_json("filter/latest.json").get("tag", ""))
        return tag if tag in self.filter_tags() else None

    def filters(self) -> dict[str, Any]:
        rows = []
        for tag in self.filter_tags():
            params = self._params(tag)
            rows.append(
                {
                    "tag": tag,
                    "layer": params.get("layer"),
                    "settings": params.get("settings", {}),
                    "counts": params.get("summary", {}).get("counts", {}),
                    "has_cloud": self.run.exists(f"filter/{tag}/cloud3d.npy"),
                }
            )
        return {"latest": self.latest_tag(), "filters": rows}

    def _params(self, tag: str) -> dict[str, Any]:
        rel = f"filter/{tag}/params.json"
        return dict(self.run.read_json(rel)) if self.run.exists(rel) else {}

    def filter_view(self, tag: str | None) -> FilterView:
        """The stored filter ``tag`` (newest when None); unknown tags are a :class:`NotFoundError`."""
        tags = self.filter_tags()
        if tag is None:
            tag = self.latest_tag() or (tags[0] if tags else None)
            if tag is None:
                raise NotFoundError(
                    "this run has no filter result yet; run one from the Filter view"
                )
        if tag not in tags:
            raise NotFoundError(f"no filter result {tag!r} in this run")
        stamp = self.run.file(f"filter/{tag}/result.parquet").stat().st_mtime
        with self._lock:
            cached = self._filters.get(tag)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            res = load_filter(self.run, tag)
            coords = None
            if self.run.exists(f"filter/{tag}/cloud3d.npy"):
                coords = np.asarray(self.run.read_array(f"filter/{tag}/cloud3d.npy"), np.float32)
                if coords.shape != (len(res), 3):
                    coords = None
            reason = res.reason.astype(str)
            group = np.full(len(res), 3, np.uint8)
            for code, name in enumerate(GROUPS[:3]):
                group[reason == name] = code
            labels = None if res.labels is None else np.asarray(res.labels).astype(np.int64)
            ids = res.ids.astype(str)
            view = FilterView(
                tag=tag,
                ids=ids,
                index={s: i for i, s in enumerate(ids.tolist())},
                kept=np.asarray(res.kept, bool),
                reason=reason,
                group=group,
                score=np.asarray(res.score, np.float64),
                outlier_score=np.asarray(res.outlier_score, np.float64),
                representative_id=res.representative_id.astype(str),
                labels=labels,
                coords=coords,
                params=self._params(tag),
            )
            self._filters[tag] = (stamp, view)
            return view

    def cloud(self, tag: str | None) -> dict[str, Any]:
        """Compact point-cloud payload: base64 little-endian typed arrays, no per-point JSON."""
        v = self.filter_view(tag)
        if v.coords is None:
            raise NotFoundError(f"filter {v.tag!r} stored no 3D coordinates; rerun it with a view")
        labels = v.labels if v.labels is not None else np.full(len(v.ids), -1)
        arch_codes, arch_names = self.archetypes(v.ids)
        return {
            "tag": v.tag,
            "n": len(v.ids),
            "groups": list(GROUPS),
            "classes": self.run.config.get("classes", []),
            "coords": _b64(v.coords.astype("<f4")),
            "group": _b64(v.group),
            "label": _b64(labels.astype("<i2")),
            "archetype": None if arch_codes is None else _b64(arch_codes.astype("<i2")),
            "archetype_names": arch_names,
            "ids": [str(i) for i in v.ids],  # hover text: which image, not only its group
            # row of the kept image each near-duplicate duplicates (-1: none), for the lines
            "representative": _b64(
                np.array(
                    [v.index.get(r, -1) if r else -1 for r in v.representative_id.tolist()],
                    dtype="<i4",
                )
            ),
        }

    def point(self, tag: str | None, index: int, neighbours: int = 8) -> dict[str, Any]:
        """Everything the click panel shows about row ``index`` of filter ``tag``."""
        v = self.filter_view(tag)
        if not 0 <= index < len(v.ids):
            raise NotFoundError(f"point index {index} is outside 0..{len(v.ids) - 1}")
        label = None if v.labels is None else int(v.labels[index])
        preds = self.predictions(v)
        pred = None if preds is None else int(preds[index])
        rep = str(v.representative_id[index])
        dups = np.flatnonzero(v.representative_id == v.ids[index])
        signal = self._signals(v.tag)
        return {
            "index": index,
            "id": str(v.ids[index]),
            "label": label,
            "class": self.class_name(label),
            "prediction": pred,
            "prediction_class": self.class_name(pred),
            "reason": str(v.reason[index]),
            "score": float(v.score[index]),
            "outlier_score": float(v.outlier_score[index]),
            "representative_id": rep or None,
            "representative_index": v.index.get(rep) if rep else None,
            "duplicates": [str(v.ids[i]) for i in dups[:12]],
            "signal": None if signal is None else (str(signal[index]) or None),
            "label_issue": self.label_issue(str(v.ids[index])),
            "neighbours": self._neighbours(v, index, neighbours),
        }

    def _signals(self, tag: str) -> np.ndarray | None:
        res = load_filter(self.run, tag)
        return None if res.signal is None else res.signal.astype(str)

    def label_issue(self, sample_id: str) -> dict[str, Any] | None:
        """The label-issue verdict of one sample (``thresher labels``), or None."""
        if not self.run.exists("labels/result.parquet"):
            return None
        stamp = self.run.file("labels/result.parquet").stat().st_mtime
        with self._lock:
            if self._labels is None or self._labels[0] != stamp:
                from thresher.workflows.labels import load_label_issues

                loaded = load_label_issues(self.run)
                self._labels = (stamp, loaded, {s: i for i, s in enumerate(loaded.ids.tolist())})
            _, issues, rows = self._labels
        i = rows.get(sample_id)
        if i is None:
            return None
        suggested = int(issues.suggested_label[i])
        return {
            "is_label_issue": bool(issues.is_label_issue[i]),
            "label_score": float(issues.label_score[i]),
            "suggested_label": suggested,
            "suggested_class": self.class_name(suggested),
        }

    def removed(self, tag: str | None, reason: str, offset: int, limit: int) -> dict[str, Any]:
        """Removed items of one reason, most removable first (near-duplicates with their pair)."""
        v = self.filter_view(tag)
        mask = (v.group == 3) & (v.reason != "label") if reason == "other" else v.reason == reason
        rows = np.flatnonzero(mask)
        rows = rows[np.argsort(-v.score[rows], kind="stable")]
        items = []
        for i in rows[offset : offset + limit]:
            label = None if v.labels is None else int(v.labels[i])
            rep = str(v.representative_id[i])
            items.append(
                {
                    "index": int(i),
                    "id": str(v.ids[i]),
                    "class": self.class_name(label),
                    "score": float(v.score[i]),
                    "representative_id": rep or None,
                }
            )
        return {"tag": v.tag, "reason": reason, "total": len(rows), "items": items}

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """Counts of two filters and the Jaccard index of their removed sets."""
        va, vb = self.filter_view(a), self.filter_view(b)
        ra, rb = set(va.ids[~va.kept].tolist()), set(vb.ids[~vb.kept].tolist())
        union = ra | rb
        return {
            "a": {"tag": va.tag, "counts": _counts(va)},
            "b": {"tag": vb.tag, "counts": _counts(vb)},
            "removed_both": len(ra & rb),
            "removed_only_a": len(ra - rb),
            "removed_only_b": len(rb - ra),
            "jaccard_removed": 1.0 if not union else len(ra & rb) / len(union),
        }

    # --- embeddings (predictions, neighbours) -----------------------------------------------
    def _embeddings_for(self, v: FilterView) -> Any | None:
        """The cached train-split embeddings at the filter's layer, if the run holds them."""
        from thresher.embed import load_embeddings

        layer = str(v.params.get("layer", ""))
        with self._lock:
            if layer in self._embeddings:
                return self._embeddings[layer]
            found = None
            root = self.run.file("embeddings")
            for entry in sorted(root.iterdir()) if root.is_dir() else []:
                try:
                    emb = load_embeddings(self.run, entry.name)
                except Exception:  # an incomplete or foreign entry: look further
                    continue
                if emb.layer == layer and np.array_equal(emb.ids.astype(str), v.ids):
                    found = emb
                    break
            self._embeddings[layer] = found
            return found

    def _norms(self, tag: str, values: np.ndarray) -> np.ndarray:
        """Row norms of the embeddings, computed once per filter result (a click reuses them)."""
        with self._lock:
            norms = self._row_norms.get(tag)
            if norms is None or norms.shape[0] != values.shape[0]:
                norms = np.linalg.norm(values, axis=1) + 1e-12
                self._row_norms[tag] = norms
            return norms

    def predictions(self, v: FilterView) -> np.ndarray | None:
        emb = self._embeddings_for(v)
        return None if emb is None else emb.predictions

    def _neighbours(self, v: FilterView, index: int, k: int) -> list[dict[str, Any]]:
        """Nearest neighbours by cosine similarity of the embeddings (3D distance without)."""
        from thresher.neighbours import nearest_to

        emb = self._embeddings_for(v)
        if emb is not None:
            values = np.asarray(emb.values, np.float32)
            top, sims = nearest_to(values, index, k, norms=self._norms(v.tag, values))
        elif v.coords is not None:
            top, sims = nearest_to(np.asarray(v.coords, np.float32), index, k, metric="l2")
        else:
            return []
        out = []
        for i, sim in zip(top, sims, strict=True):
            label = None if v.labels is None else int(v.labels[i])
            out.append(
                {
                    "index": int(i),
                    "id": str(v.ids[i]),
                    "class": self.class_name(label),
                    "reason": str(v.reason[i]),
                    "similarity": float(sim) if emb is not None else None,
                }
            )
        return out

    # --- the sample grid ------------------------------------------------------------------
    def _stamp(self, rel: str) -> float:
        return self.run.file(rel).stat().st_mtime if self.run.exists(rel) else 0.0

    def grid_frame(self, split: str, tag: str | None) -> GridFrame:
        """Every image of ``split`` with what the run knows of it (filter ``tag`` or the newest,
        label issues, archetypes, predictions), rebuilt when one of those files changes."""
        ds, _ = self.dataset(split)
        view = None
        if split == "train" and self.filter_tags():
            view = self.filter_view(tag)
        elif tag is not None and split == "train":
            raise NotFoundError(f"no filter result {tag!r} in this run")
        arch = self._archetype_table() if split == "train" else None
        stamps = (
            self._stamp(f"filter/{view.tag}/result.parquet") if view else 0.0,
            self._stamp("labels/result.parquet") if split == "train" else 0.0,
            0.0 if arch is None else arch[0],
        )
        key = (split, None if view is None else view.tag)
        with self._lock:
            cached = self._frames.get(key)
            if cached is not None and cached[0] == stamps:
                return cached[1]
        cols = empty_frame(ds.ids, ds.labels)
        if view is not None:
            reason = np.where(
                np.isin(view.reason, ("kept", "outlier", "similar", "label")), view.reason, "other"
            )
            join(
                cols,
                view.ids,
                {"reason": reason, "score": view.score, "outlier_score": view.outlier_score},
            )
            preds = self.predictions(view)
            if preds is not None:
                join(cols, view.ids, {"predictions": preds})
            cols["filter_tag"] = view.tag
        if split == "train" and self.run.exists("labels/result.parquet"):
            from thresher.workflows.labels import load_label_issues

            issues = load_label_issues(self.run)
            join(
                cols,
                issues.ids,
                {"label_score": issues.label_score, "is_label_issue": issues.is_label_issue},
            )
        if arch is not None:
            _, table = arch
            values: dict[str, np.ndarray] = {"archetype": np.asarray(table["archetype"], object)}
            if "same_class_neighbours" in table:
                values["same_class_neighbours"] = np.asarray(table["same_class_neighbours"])
            join(cols, np.asarray(table["id"]).astype(str), values)
        frame = GridFrame(**cols)
        with self._lock:
            self._frames[key] = (stamps, frame)
        return frame

    def _archetype_table(self) -> tuple[float, dict[str, Any]] | None:
        """``(mtime, columns)`` of the first diagnostics table with ``id`` and ``archetype``."""
        import pyarrow.parquet as pq

        for name, path in self.area_files("diagnose").items():
            if not name.endswith(".parquet"):
                continue
            try:
                cols = pq.read_schema(path).names
                if "id" not in cols or "archetype" not in cols:
                    continue
                wanted = [c for c in ("id", "archetype", "same_class_neighbours") if c in cols]
                return path.stat().st_mtime, pq.read_table(path, columns=wanted).to_pydict()
            except Exception:  # a foreign or broken table: look further
                continue
        return None

    def items(
        self, split: str, filter_tag: str | None, *, offset: int, limit: int, **filters: Any
    ) -> dict[str, Any]:
        """A page of the grid: rows passing ``filters`` (see :func:`thresher.app.grid.query`),
        from ``offset``, with the choices each filter offers."""
        from thresher.workflows.curation import load_tags, tag_counts

        frame = self.grid_frame(split, filter_tag)
        tags = load_tags(self.run) if split == "train" else {}
        rows = query(frame, tags=tags, **filters)
        classes = list(self.run.config.get("classes", []))
        page = rows[offset : offset + limit]
        return {
            "split": split,
            "tag": frame.filter_tag,
            "total": len(rows),
            "size": len(frame),
            "offset": offset,
            "items": [
                {**row_dict(frame, int(r), tags, classes), **self._objects_text(split, int(r))}
                for r in page
            ],
            "choices": {
                "classes": classes,
                "reasons": sorted({str(r) for r in frame.reason.tolist() if r}),
                "archetypes": sorted({str(a) for a in frame.archetype.tolist() if a}),
                "tags": list(tag_counts(tags)),
            },
        }

    # --- one image: everything the run knows ---------------------------------------------
    def item(self, split: str, sample_id: str, tag: str | None) -> dict[str, Any]:
        """The image view's facts about ``sample_id`` of ``split``."""
        from thresher.workflows.curation import load_tags

        _ds, index = self.dataset(split)
        row = index.get(sample_id)
        if row is None:
            raise NotFoundError(f"no sample {sample_id!r} in the {split} split of this run")
        frame = self.grid_frame(split, tag)
        tags = load_tags(self.run) if split == "train" else {}
        facts = row_dict(frame, row, tags, list(self.run.config.get("classes", [])))
        facts["split"] = split
        facts.update(self._objects(split, row))
        facts["probabilities"] = self._probabilities(split, row)
        if facts["probabilities"] is not None:
            top = int(np.argmax(facts["probabilities"]))
            facts["prediction"] = top
            facts["prediction_class"] = self.class_name(top)
            facts["confidence"] = float(facts["probabilities"][top])
        facts["filter"] = None
        facts["neighbours"] = []
        if split == "train" and frame.filter_tag is not None:
            v = self.filter_view(frame.filter_tag)
            i = v.index.get(sample_id)
            if i is not None:
                facts["filter"] = self._filter_facts(v, i)
                facts["neighbours"] = self._neighbours(v, i, 8)
        facts["archetype_k"] = self._archetype_k()
        facts["label_issue"] = self.label_issue(sample_id) if split == "train" else None
        facts["has_model"] = self._has_model()
        return facts

    def _filter_facts(self, v: FilterView, i: int) -> dict[str, Any]:
        rep = str(v.representative_id[i])
        dups = np.flatnonzero(v.representative_id == v.ids[i])
        signal = self._signals(v.tag)
        settings = v.params.get("settings", {})
        return {
            "tag": v.tag,
            "layer": v.params.get("layer"),
            "index": i,
            "reason": str(v.reason[i]),
            "signal": None if signal is None else (str(signal[i]) or None),
            "outlier_method": settings.get("outlier_score"),
            "baseline": settings.get("baseline"),
            "score": float(v.score[i]),
            "outlier_score": float(v.outlier_score[i]),
            "representative_id": rep or None,
            "duplicates": [str(v.ids[j]) for j in dups[:24]],
            "duplicates_total": len(dups),
        }

    def _archetype_k(self) -> int | None:
        if not self.run.exists("diagnose/archetypes/result.json"):
            return None
        k = self.run.read_json("diagnose/archetypes/result.json").get("result", {}).get("k")
        return None if k is None else int(k)

    def _has_model(self) -> bool:
        from thresher.workflows.run import WEIGHTS

        return self.run.exists(WEIGHTS)

    def _net(self) -> Any:
        from thresher.workflows.run import run_model

        if self._model is None:
            self._model = run_model(self.run)
        return self._model

    def _objects_text(self, split: str, row: int) -> dict[str, Any]:
        """``{"objects_text": "7, 6"}`` (the classes of a detection image's boxes), else ``{}``."""
        from thresher.data.detection import DetectionDataset

        ds, _ = self.dataset(split)
        if not isinstance(ds, DetectionDataset):
            return {}
        _, labels = ds.targets(row)
        return {"objects_text": ", ".join(str(self.class_name(int(c))) for c in labels)}

    def _objects(self, split: str, row: int) -> dict[str, Any]:
        """A detection set's boxes of one image, and what the run's detector finds there
        (score >= 0.3, best first); ``{}`` for a classification set."""
        from thresher.data.detection import DetectionDataset

        ds, _ = self.dataset(split)
        if not isinstance(ds, DetectionDataset):
            return {}
        boxes, labels = ds.targets(row)
        out: dict[str, Any] = {
            "objects": [
                {"class": self.class_name(int(c)), "box": [round(float(v), 1) for v in b]}
                for b, c in zip(boxes, labels, strict=True)
            ],
            "detections": None,
        }
        if self._has_model():
            from thresher.train.detection import predict_boxes

            with self._model_lock:
                found = predict_boxes(self._net(), ds.take([row]), device="cpu")[0]
            keep = np.flatnonzero(found["scores"] >= 0.3)[:20]
            out["detections"] = [
                {
                    "class": self.class_name(int(found["labels"][k])),
                    "score": float(found["scores"][k]),
                    "box": [round(float(v), 1) for v in found["boxes"][k]],
                }
                for k in keep
            ]
        return out

    def _probabilities(self, split: str, row: int) -> list[float] | None:
        """Softmax of the run's model on one image (None for a run without a model)."""
        if not self._has_model():
            return None
        import torch

        from thresher.workflows.run import run_transform

        ds, _ = self.dataset(split)
        with self._model_lock, torch.no_grad():
            net = self._net()
            x = torch.from_numpy(np.ascontiguousarray(ds.images[row : row + 1]))
            logits = net(run_transform(self.run)(x))
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                return None  # not a classifier (a detector answers boxes)
            return [float(p) for p in torch.softmax(logits.float(), dim=1)[0].tolist()]

    def relevance_png(self, split: str, sample_id: str, target: int) -> bytes:
        """PNG of the LRP relevance of class ``target`` for one image: red for evidence for the
        class, blue against, white none (scaled to the map's largest magnitude)."""
        from thresher.workflows.run import require_model, run_transform

        require_model(self.run, "relevance maps")
        from thresher.workflows.evaluate_detection import is_detection_run

        if is_detection_run(self.run):
            raise ConfigError(
                "relevance maps explain a classifier's class score; this run holds a detector"
            )
        classes = self.run.config.get("classes", [])
        if not 0 <= target < max(len(classes), 1):
            raise NotFoundError(f"class {target} is outside 0..{len(classes) - 1}")
        ds, index = self.dataset(split)
        row = index.get(sample_id)
        if row is None:
            raise NotFoundError(f"no sample {sample_id!r} in the {split} split of this run")
        key = (split, sample_id, target)
        with self._lock:
            if key in self._relevance:
                return self._relevance[key]
        from thresher.explain import lrp_maps

        with self._model_lock:
            maps = lrp_maps(
                self._net(),
                np.ascontiguousarray(ds.images[row : row + 1]),
                np.array([target]),
                transform=run_transform(self.run),
                device="cpu",
            )
        png = encode_png(relevance_rgb(maps[0].sum(axis=0)))
        with self._lock:
            if len(self._relevance) > 512:  # a bounded cache: a session looks at few images
                self._relevance.clear()
            self._relevance[key] = png
        return png

    # --- tags ---------------------------------------------------------------------------------
    def tags(self) -> dict[str, Any]:
        from thresher.workflows.curation import STANDARD_TAGS, load_tags, tag_counts

        tags = load_tags(self.run)
        return {"standard": list(STANDARD_TAGS), "counts": tag_counts(tags), "tagged": len(tags)}

    def set_tags(self, ids: list[str], add: list[str], remove: list[str]) -> dict[str, Any]:
        from thresher.workflows.curation import update_tags

        ds, _ = self.dataset("train")
        with self._lock:  # one writer at a time: read, change, write the tag file
            changed = update_tags(self.run, ids, add=add, remove=remove, known_ids=ds.ids)
        return {"tags": {k: list(v) for k, v in changed.items()}, **self.tags()}

    def curated(self, tag: str | None) -> dict[str, Any]:
        from thresher.workflows.curation import curated_set

        view = self.filter_view(tag) if self.filter_tags() else None
        return curated_set(self.run, tag=None if view is None else view.tag).to_dict()

    # --- diagnostics and reduction as the report draws them ---------------------------------
    def sections(self, area: str) -> list[Any]:
        """The report's sections of ``area`` (``diagnose`` or ``reduce``), cached until a file
        under it changes."""
        files = self.area_files(area)
        stamp = (*tuple(sorted(p.stat().st_mtime for p in files.values())), float(len(files)))
        with self._lock:
            cached = self._sections.get(area)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            if area == "diagnose":
                from thresher.report.html import report_sections
                from thresher.workflows.diagnose import stored_analyses

                found = report_sections([self.run]) if stored_analyses(self.run) else []
            else:
                from thresher.report.reduction import reduction_sections

                has = self.run.exists("reduce/state.json")
                found = reduction_sections(self.run) if has else []
        except Exception as exc:  # a stored result this version cannot read: say which
            command = "thresher diagnose RUN" if area == "diagnose" else "thresher reduce RUN"
            raise RunError(
                f"cannot draw the {area} results of this run ({type(exc).__name__}: {exc}); "
                f"rerun `{command}` to store them again; the files are listed below"
            ) from exc
        with self._lock:
            self._sections[area] = (stamp, found)
        return found

    def section_figure(self, area: str, section: str, index: int) -> bytes:
        for sec in self.sections(area):
            if sec.id == section and 0 <= index < len(sec.figures):
                return bytes(sec.figures[index][1])
        raise NotFoundError(f"no figure {index} in section {section!r} of {area}")

    # --- diagnostics / reduction / archetypes -----------------------------------------------
    def area_files(self, area: str) -> dict[str, Path]:
        """``relative name -> path`` of the figures and tables under ``RUN/<area>``."""
        if area not in AREAS:
            raise ValueError(f"area must be one of {', '.join(AREAS)}, got {area!r}")
        root = self.run.file(area)
        if not root.is_dir():
            return {}
        real_root = root.resolve()
        files = {}
        for p in sorted(root.rglob("*")):
            # symlinks could point anywhere: only plain files that resolve inside the area
            if p.is_symlink() or not p.is_file() or p.suffix.lower() not in AREA_SUFFIXES:
                continue
            if p.resolve().is_relative_to(real_root):
                files[p.relative_to(root).as_posix()] = p
        return files

    def area_listing(self, area: str) -> dict[str, Any]:
        files = self.area_files(area)
        return {
            "area": area,
            "files": [
                {"name": name, "kind": p.suffix.lower().lstrip("."), "bytes": p.stat().st_size}
                for name, p in files.items()
            ],
        }

    def area_file(self, area: str, name: str) -> tuple[Path, str]:
        """A listed file by its listed name (the listing is the only way in)."""
        path = self.area_files(area).get(name)
        if path is None:
            raise NotFoundError(f"no file {name!r} in this run's {area} results")
        return path, path.suffix.lower().lstrip(".")

    def area_table(self, area: str, name: str) -> dict[str, Any]:
        """A JSON, CSV or Parquet file as JSON (tables cut to :data:`TABLE_ROWS` rows)."""
        import json

        path, kind = self.area_file(area, name)
        if kind == "json":
            return {"name": name, "kind": kind, "data": json.loads(path.read_text("utf-8"))}
        if kind in ("parquet", "csv"):
            if kind == "parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
            else:
                import pyarrow.csv as pcsv

                table = pcsv.read_csv(path)
            head = table.slice(0, TABLE_ROWS).to_pylist()
            return {
                "name": name,
                "kind": kind,
                "columns": table.column_names,
                "rows": _jsonable(head),
                "total_rows": table.num_rows,
            }
        raise NotFoundError(f"{name!r} is an image, not a table; fetch it as a file")

    def archetypes(self, ids: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
        """Archetype codes per id from a diagnostics table with ``id`` and ``archetype``."""
        found = self._archetype_table()
        if found is not None:
            table = found[1]
            lookup = {str(i): str(a) for i, a in zip(table["id"], table["archetype"], strict=True)}
            names = sorted(set(lookup.values()))
            code = {a: c for c, a in enumerate(names)}
            return np.array([code.get(lookup.get(s, ""), -1) for s in ids.tolist()]), names
        return None, []


def _counts(v: FilterView) -> dict[str, int]:
    return {
        "total": len(v.ids),
        "kept": int(v.kept.sum()),
        "outlier": int((v.reason == "outlier").sum()),
        "label": int((v.reason == "label").sum()),
        "similar": int((v.reason == "similar").sum()),
        "other": int(((v.group == 3) & (v.reason != "label")).sum()),
    }


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


def relevance_rgb(relevance: np.ndarray) -> np.ndarray:
    """``(H, W)`` relevance -> ``(3, H, W)`` uint8: red positive, blue negative, white zero."""
    r = np.asarray(relevance, np.float64)
    scale = float(np.abs(r).max()) or 1.0
    t = np.clip(r / scale, -1.0, 1.0)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    red = 1.0 - neg
    green = 1.0 - pos - neg
    blue = 1.0 - pos
    rgb = np.stack([red, green, blue]).clip(0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """``(C, H, W)`` uint8 or float in [0, 1] -> PNG bytes (grey or RGB)."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise RunError(f"cannot show an image of shape {arr.shape}; expected (1|3, H, W)")
    pil = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()
