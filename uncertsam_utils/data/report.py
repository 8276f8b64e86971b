"""What a reader left out, and why: counted skips with the file they concern.

The data layer never drops something silently. Anything it leaves out of a split is recorded here,
and ``summary()`` turns the record into text for the CLI and notebooks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Reason keys, and the words used for them in summaries.
HIDDEN_FILE = "hidden_file"
NOT_JPG = "not_jpg"
MISSING_IMAGE = "missing_image"
EMPTY_MASK = "empty_mask"
SMALL_MASK = "small_mask"
VANISHES = "vanishes_after_resize"
NO_OBJECTS = "no_objects"

REASON_TEXT = {
    HIDDEN_FILE: "hidden file in images/ (e.g. macOS '._' metadata), ignored",
    NOT_JPG: "file in images/ that is not a .jpg, ignored",
    MISSING_IMAGE: "annotation whose image file is missing",
    EMPTY_MASK: "empty mask",
    SMALL_MASK: "mask under min_mask_pixels",
    VANISHES: "mask that vanishes when resized to the model input",
    NO_OBJECTS: "image with no objects",
}


@dataclass(frozen=True)
class Skip:
    reason: str                      # one of the keys above
    file: str                        # the file the skip concerns (image, or dataset.json for annotations)
    image_id: int | None = None
    annotation_id: int | None = None
    detail: str = ""


@dataclass
class SkipReport:
    """The skips of one split, plus what was kept, for ``summary()``."""

    where: str                       # "<Dataset>/<split>"
    kept_images: int = 0
    kept_masks: int = 0
    skips: list[Skip] = field(default_factory=list)

    def add(self, reason: str, file: str, *, image_id: int | None = None,
            annotation_id: int | None = None, detail: str = "") -> None:
        if reason not in REASON_TEXT:
            raise ValueError(f"unknown skip reason {reason!r}")
        self.skips.append(Skip(reason, file, image_id, annotation_id, detail))

    def counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skips))

    def __len__(self) -> int:
        return len(self.skips)

    def summary(self, max_examples: int = 5) -> str:
        lines = [f"{self.where}: {self.kept_images} images with {self.kept_masks} masks"
                 + (", nothing skipped" if not self.skips else f", {len(self.skips)} skipped:")]
        for reason, count in sorted(self.counts().items(), key=lambda kv: (-kv[1], kv[0])):
            examples = [s for s in self.skips if s.reason == reason][:max_examples]
            shown = "; ".join(_describe(s) for s in examples)
            more = f"; and {count - len(examples)} more" if count > len(examples) else ""
            lines.append(f"  {count} x {REASON_TEXT[reason]}: {shown}{more}")
        return "\n".join(lines)


def _describe(skip: Skip) -> str:
    parts = [skip.file]
    if skip.annotation_id is not None:
        parts.append(f"annotation {skip.annotation_id}")
    if skip.detail:
        parts.append(skip.detail)
    return " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")
