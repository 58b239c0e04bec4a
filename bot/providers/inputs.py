"""A model's input object, built entirely from its catalog entry (shared by the adapters
whose APIs take the model's own fields: APIXO's ``input``, fal's body, Replicate's
``input``)."""

from __future__ import annotations

from typing import Any

from bot.catalog import ModelSpec
from bot.providers.base import GenerationRequest


def build_input(spec: ModelSpec, request: GenerationRequest) -> dict[str, Any]:
    """The model's input object, entirely from its catalog entry: the shape's fixed fields,
    the prompt, the length as the API spells it, the orientation fields, the images (a
    list or one URL each, in the shape's own field names), the extras the model takes
    and the entry's fixed input fields."""
    inp: dict[str, Any] = {**spec.shapes.get(request.shape, {}), "prompt": request.prompt.strip()}
    if spec.duration_field is not None:
        inp[spec.duration_field] = spec.duration_value(spec.length_for(request.duration))
    inp.update(spec.fields_for(request.mode, request.orientation))
    start_field, end_field = spec.image_fields_for(request.shape)
    urls = [i.url for i in (request.image, request.end_image) if i is not None]
    if urls and end_field is not None and len(urls) == 2:
        inp[end_field] = urls.pop()
    if urls:
        inp[start_field] = urls if spec.image_list else urls[0]
    if request.negative_prompt and spec.negative_prompt_max is not None:
        inp[spec.negative_prompt_field] = request.negative_prompt.strip()
    if request.seed is not None and spec.seed_field is not None:
        inp[spec.seed_field] = request.seed
    if request.audio is not None and spec.audio_field is not None:
        inp[spec.audio_field] = request.audio
    inp.update(spec.input_extra)
    return inp
