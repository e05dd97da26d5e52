"""The transform's content parts: text with annotations, refusals, images, files and audio, as
the input or output content the API takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.model import AudioPart, FilePart, ImagePart, Part, RefusalPart, TextPart
from migrate.transform.annotations import describe_annotation, map_annotation, strip_markers
from migrate.transform.parts import describe_attachment, output_text
from migrate.transform.walk import _Walk

IMAGE_DETAILS = frozenset({"auto", "low", "high"})
URL_PREFIXES = ("http://", "https://", "data:")


class _Content(_Walk):
    """Turns a message's parts into API content parts, with a finding for each loss."""

    def _input_content(self, role: str, parts: Sequence[Part]) -> list[dict[str, Any]]:
        """Input content parts (`input_text`, `input_image`, `input_file`) for `parts`."""
        content: list[dict[str, Any]] = []
        for part in parts:
            match part:
                case TextPart():
                    text, _ = self._text_and_annotations(part, keep_annotations=False)
                    if text:
                        content.append({"type": "input_text", "text": text})
                case RefusalPart():
                    self._find("refusal_as_text", f"refusal in a {role} message sent as text")
                    content.append(
                        {"type": "input_text", "text": self._checked(part.refusal, "refusal")}
                    )
                case ImagePart():
                    image = self._input_image(part)
                    if image is not None:
                        content.append(image)
                case FilePart():
                    content.append(self._input_file(part))
                case AudioPart():
                    spoken = self._audio_text(part)
                    if spoken is not None:
                        content.append({"type": "input_text", "text": spoken})
        return content

    def _refusal(self, part: RefusalPart, as_string: bool) -> dict[str, Any] | None:
        refusal = self._checked(part.refusal, "refusal")
        match self.policy.refusal:
            case "fail":
                raise self._policy_fail("refusal", "assistant refusal", "refusal")
            case "drop":
                self._find("refusal_dropped", "assistant refusal dropped")
                return None
            case "part" if not as_string:
                return {"type": "refusal", "refusal": refusal}
            case _:
                self._find("refusal_as_text", "assistant refusal sent as assistant text")
                return output_text(refusal)

    # --- text and annotations -----------------------------------------------------------------

    def _text_and_annotations(
        self, part: TextPart, *, keep_annotations: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        text = part.text
        annotations = part.annotations
        if annotations and self.policy.citation_markers == "strip":
            text, annotations, stripped = strip_markers(text, annotations)
            if stripped:
                self._find(
                    "citation_markers_stripped", f"{stripped} citation marker(s) removed", stripped
                )
        self._checked(text, "text")
        mapped: list[dict[str, Any]] = []
        for annotation in annotations:
            api_annotation, missing = map_annotation(annotation)
            if keep_annotations and api_annotation is not None:
                mapped.append(api_annotation)
                continue
            reason = f"missing {', '.join(missing)}" if missing else "this content cannot carry it"
            described = describe_annotation(annotation)
            self._find(
                "annotation_dropped",
                f"{annotation.kind} annotation dropped ({reason}): {described}",
                value=annotation.model_dump(exclude_none=True),
            )
        return text, mapped

    # --- images, files, audio ----------------------------------------------------------------

    def _input_image(self, part: ImagePart) -> dict[str, Any] | None:
        detail = part.detail
        if detail not in IMAGE_DETAILS:
            if detail is not None:
                self._find(
                    "image_detail_replaced",
                    f"image detail {detail!r} is not one of auto|low|high; "
                    f"sent as {self.policy.image_detail!r}",
                )
            detail = self.policy.image_detail
        if part.url and part.url.startswith(URL_PREFIXES):
            return {"type": "input_image", "image_url": part.url, "detail": detail}
        if part.file_id:
            return {"type": "input_image", "file_id": part.file_id, "detail": detail}
        reference = part.reference or part.url
        if not reference:
            raise self._error("invalid_content", "image part without URL, file id or reference")
        match self.policy.unresolved_image:
            case "fail":
                raise self._policy_fail(
                    "unresolved_image", f"image {reference!r} cannot be sent", "unresolved_image"
                )
            case "drop":
                self._find("unresolved_image_dropped", f"image {reference!r} dropped")
                return None
            case _:
                self._find(
                    "unresolved_image_as_text", f"image {reference!r} sent as a text placeholder"
                )
                return {"type": "input_text", "text": f"[image: {reference}]"}

    def _input_file(self, part: FilePart) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "input_file"}
        if part.file_id:
            out["file_id"] = part.file_id
        elif part.file_data:
            if not part.filename:
                raise self._error("invalid_content", "file data without a filename")
            out["file_data"] = part.file_data
        elif part.file_url:
            out["file_url"] = part.file_url
        else:
            raise self._error("invalid_content", "file part without file id, data or URL")
        if part.filename:
            out["filename"] = part.filename
        return out

    def _assistant_attachment(self, part: ImagePart | FilePart) -> str | None:
        reference = describe_attachment(part)
        match self.policy.assistant_image:
            case "fail":
                raise self._policy_fail(
                    "assistant_image", f"assistant {reference} cannot be sent", "assistant_image"
                )
            case "drop":
                self._find("assistant_image_dropped", f"assistant {reference} dropped")
                return None
            case _:
                self._find(
                    "assistant_image_as_text", f"assistant {reference} sent as a text reference"
                )
                return f"[{reference}]"

    def _audio_text(self, part: AudioPart) -> str | None:
        what = f"audio ({part.format or 'unknown format'}" + (
            f", {part.audio_id})" if part.audio_id else ")"
        )
        match self.policy.audio:
            case "fail":
                raise self._policy_fail("audio", f"{what} cannot be sent", "audio")
            case "drop":
                self._find("audio_dropped", f"{what} dropped")
                return None
            case _:
                if part.transcript:
                    self._find("audio_as_text", f"{what} sent as its transcript")
                    return self._checked(part.transcript, "audio transcript")
                self._find("audio_as_text", f"{what} without transcript sent as a placeholder")
                return f"[{what}]"
