"""CLIP as a zero-shot classifier: ``hf/<CLIP model>`` with ``labels`` (issue 27).

A Hugging Face model whose ``config.json`` says ``model_type: clip``
(``hf/openai/clip-vit-base-patch32``, or a ``save_pretrained`` folder of a ``CLIPModel`` with its
tokenizer and image processor) loads as a classifier of the config's ``labels``: each label
becomes a prompt through the template ``options: {prompt: "a photo of a {}."}`` (the default;
``"{}"`` uses the labels as written), the prompts' text embeddings are computed once at load,
and the handle's module :class:`CLIPZeroShot` returns

    ``logits = logit_scale.exp() * image_embedding @ text_embeddings.T``

so every technique explains "how much this image matches prompt ``k``" as it explains a class.
Class names are the labels. The module also embeds any text (:meth:`CLIPZeroShot.embed_text`),
which the ``embedding_similarity`` target reads for a ``text:PROMPT`` reference, and names the
layer whose output is the normalised image embedding (:attr:`CLIPZeroShot.embedding_layer`).

What does not live here: finding, checking and loading Hugging Face files, the preprocessing
(:mod:`xai_core.models.huggingface`, which sends CLIP models here); the target kinds
(``plugins/targets.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.errors import ConfigError

__all__ = ["CLIP_TYPES", "DEFAULT_PROMPT", "CLIPZeroShot", "check_prompt", "prompts"]

#: ``config.model_type`` of the models that load as zero-shot classifiers.
CLIP_TYPES = ("clip",)
#: The template a label becomes a prompt through, unless ``options: {prompt: ...}`` says.
DEFAULT_PROMPT = "a photo of a {}."
#: How to give the prompts, for the errors that miss them.
LABELS_FIX = (
    "give the class prompts as the model's `labels` (a list, e.g. labels: [cat, dog], or a text "
    f"file with one a line); each becomes a prompt through options.prompt ({DEFAULT_PROMPT!r} "
    "by default)"
)


def check_prompt(prompt: Any) -> str:
    """The prompt template ``prompt`` (``None``: the default): text with one ``{}``."""
    if prompt is None:
        return DEFAULT_PROMPT
    if not isinstance(prompt, str) or prompt.count("{}") != 1 or prompt.count("{") != 1 \
            or prompt.count("}") != 1:
        raise ConfigError(
            f"options.prompt {prompt!r} is not a prompt template: give text with one {{}} where "
            f"the label goes (e.g. {DEFAULT_PROMPT!r}; '{{}}' uses the labels as written)"
        )
    return prompt


def prompts(labels: Sequence[str], prompt: Any = None) -> list[str]:
    """The text each label is embedded as: the template ``prompt`` with the label in its
    ``{}``."""
    template = check_prompt(prompt)
    return [template.replace("{}", label) for label in labels]


def _pooled(output: Any) -> Tensor:
    """The features of ``get_image_features`` / ``get_text_features``: a tensor in older
    ``transformers``, the ``pooler_output`` of an output object in newer ones."""
    return output if isinstance(output, Tensor) else output.pooler_output


def _normalised(features: Tensor) -> Tensor:
    return features / features.norm(dim=-1, keepdim=True)


class CLIPZeroShot(nn.Module):
    """A ``transformers`` CLIP model as a classifier of text prompts: ``forward(x)`` returns
    ``logit_scale.exp() * image_embedding @ text_embeddings.T`` (``[N, prompts]``).

    :ivar model: the ``CLIPModel`` (layer paths start with ``model.``:
        ``model.vision_model.encoder.layers.11.layer_norm1``); only its vision tower and
        projection run in ``forward``.
    :ivar embedding: an identity on the normalised image embedding ``[N, D]``, so that a hook
        (a target, ``layer: embedding``) can read it.
    :ivar text_embeddings: buffer ``[prompts, D]``, the normalised embeddings of the prompts,
        computed once (without gradients) when the module is built.
    :ivar prompts: the prompt of each output.
    """

    #: The layer whose output is the model's embedding (the normalised image embedding): what
    #: ``embedding_similarity`` compares when it names no layer.
    embedding_layer = "embedding"

    def __init__(self, model: nn.Module, tokenizer: Any, prompts: Sequence[str]):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.embedding = nn.Identity()
        self.prompts = list(prompts)
        self.num_classes = len(self.prompts)
        # The class token in front of the patch tokens (read by infer_layout).
        self.num_prefix_tokens = 1
        self.register_buffer("text_embeddings", self.embed_text(self.prompts))

    def embed_text(self, texts: Sequence[str]) -> Tensor:
        """The normalised text embeddings ``[len(texts), D]`` of ``texts``, without gradients,
        on the module's device: what a prompt is compared with."""
        device = self.model.logit_scale.device
        limit = getattr(self.model.config.text_config, "max_position_embeddings", None)
        tokens = self.tokenizer(list(texts), padding=True, truncation=limit is not None,
                                max_length=limit, return_tensors="pt")
        with torch.no_grad():
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(device),
                attention_mask=tokens["attention_mask"].to(device),
            )
        return _normalised(_pooled(features)).detach()

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.model.vision_model(pixel_values=x).pooler_output
        image = self.embedding(_normalised(self.model.visual_projection(pooled)))
        return self.model.logit_scale.exp() * image @ self.text_embeddings.to(image.dtype).T
