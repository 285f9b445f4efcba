"""What the API rejects in one Messages request: the API version's rules and the model's.

:func:`validate_params` returns the (error type, message) the API answers
for a request, or None when it is fine. Realtime calls turn it into an HTTP
error; a batch records it at creation and reports the request as an
``errored`` result once the batch has ended (validation inside a batch is
asynchronous). Per-model rules read the model table (``catalog.py``) and
nothing else. Each rule names its source page in ``docs/simulator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .catalog import EFFORTS, THINKING_TYPES, ModelSpec, resolve
from .media import ImageInfo
from .model import forced_tool, output_schema
from .protocol import APIError
from .reading import FileLookup, MediaProblem, is_pdf, media_blocks
from .reading import resolve as resolve_media
from .thinking import effort_of, forces_tool
from .tokens import count_input_tokens

#: The ``anthropic-version`` values the API accepts, oldest first.
API_VERSIONS: tuple[str, ...] = ("2023-06-01", "2026-10-21")
V2023, V2026 = API_VERSIONS
#: The sampling parameters version 2026-10-21 removed.
SAMPLING = ("temperature", "top_p", "top_k")
#: The beta that lifts a batch request's max_tokens to the model's batch maximum.
OUTPUT_300K_BETA = "output-300k-2026-03-24"

#: Images per request: 100 on models with a context window of 200K tokens or less, else 600.
MAX_IMAGES = (100, 600)
#: Longest side of an image: 8000 px, or 2000 px when a request has more than 20 images.
MAX_IMAGE_SIDE, MAX_IMAGE_SIDE_MANY, MANY_IMAGES = 8000, 2000, 20
#: PDF pages per request: 100 when the context window is under 1M tokens, else 600.
MAX_PDF_PAGES = (100, 600)


class Problem(NamedTuple):
    """What the API answers for a request: error type, message and, for some, ``details``."""

    error_type: str
    message: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Context:
    """Where a request is checked: its API version, batch or realtime, the betas and the model policy."""

    version: str = V2023
    in_batch: bool = False
    strict_models: bool | list[str] | None = None
    betas: frozenset[str] = field(default_factory=frozenset)
    counting: bool = False  # /v1/messages/count_tokens: no max_tokens, no output rules
    files: FileLookup | None = None  # where the uploads that media blocks name are looked up


def _invalid(message: str) -> Problem:
    return Problem("invalid_request_error", message)


def model_problem(model: object, strict: bool | list[str] | None) -> tuple[ModelSpec | None, Problem | None]:
    """The model's record, or the 404 the API answers: unknown id, outside the strict list, retired."""
    if model is None:
        return None, _invalid("model: Field required")
    spec = resolve(model, strict) if isinstance(model, str) else None
    if spec is None or spec.retired:
        return None, Problem("not_found_error", f"model: {model}")
    return spec, None


def validate_params(params: Any, ctx: Context, size_hint: int | None = None) -> Problem | None:
    """The (error type, message) the API would answer for these params, or None if fine.

    ``size_hint`` is the params' JSON size when known and the prompt has no
    image or document (those count a flat rate, whatever their size): a prompt
    too small to be near the context window is then not counted, so a batch of
    100,000 requests stays fast.
    """
    if not isinstance(params, dict):
        return _invalid("params: Input should be a valid dictionary")
    spec, problem = model_problem(params.get("model"), ctx.strict_models)
    if problem is not None or spec is None:
        return problem
    for check in (_max_tokens, _messages, _media, _version_rules, _sampling, _prefill, _effort, _thinking,
                  _tool_choice, _output_shape):
        problem = check(params, spec, ctx)
        if problem is not None:
            return problem
    if not ctx.counting:
        return _prompt_length(params, spec, size_hint, ctx.files)
    return None


# -- the shape every version checks ---------------------------------------------------------
def _max_tokens(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if ctx.counting:
        return None
    mt = params.get("max_tokens")
    if mt is None:
        return _invalid("max_tokens: Field required")
    if not isinstance(mt, int) or isinstance(mt, bool):
        return _invalid("max_tokens: Input should be a valid integer")
    if mt < 1:
        return _invalid("max_tokens: Input should be greater than or equal to 1")
    limit = spec.max_tokens
    if ctx.in_batch and OUTPUT_300K_BETA in ctx.betas and spec.batch_max_tokens:
        limit = spec.batch_max_tokens
    if mt > limit:
        return _invalid(
            f"max_tokens: {mt} > {limit}, which is the maximum allowed number of output tokens for {spec.id}"
        )
    return None


def _messages(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    messages = params.get("messages")
    if messages is None:
        return _invalid("messages: Field required")
    if not isinstance(messages, list):
        return _invalid("messages: Input should be a valid list")
    if not messages:
        return _invalid("messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return _invalid(f"messages.{i}: Input should be a valid dictionary")
        if msg.get("role") not in ("user", "assistant"):
            return _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            return _invalid(f"messages.{i}.content: Field required")
        if isinstance(content, list) and not content and i < len(messages) - 1:
            return _invalid(f"messages.{i}: all messages must have non-empty content")
    if ctx.in_batch and params.get("stream"):
        return _invalid("stream: streaming is not supported in a message batch")
    return None


# -- images and documents (/docs/en/build-with-claude/vision, pdf-support, files) -------------
def _media(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    images: list[tuple[str, ImageInfo]] = []
    pages = n_images = 0
    for item in media_blocks(params):
        try:
            info = resolve_media(item, ctx.files)
        except MediaProblem as exc:
            return Problem(exc.error_type, exc.message, exc.details)
        if item.kind == "image":
            n_images += 1
            if not spec.features.image_input:
                return _invalid(f"{item.path}: {spec.id} does not support image input (capabilities.image_input)")
            if isinstance(info, ImageInfo):
                images.append((item.path, info))
        elif is_pdf(info, item):
            if not spec.features.pdf_input:
                return _invalid(f"{item.path}: {spec.id} does not support PDF input (capabilities.pdf_input)")
            pages += getattr(info, "pages", 1)
    limit = MAX_IMAGES[0] if spec.max_input_tokens <= 200_000 else MAX_IMAGES[1]
    if n_images > limit:
        return _invalid(f"messages: too many images: {n_images} > {limit}, the most one request may hold for {spec.id}")
    side = MAX_IMAGE_SIDE_MANY if n_images > MANY_IMAGES else MAX_IMAGE_SIDE
    too_big = [path for path, info in images if max(info.width, info.height) > side]
    if too_big:
        many = " for many-image requests" if n_images > MANY_IMAGES else ""
        return Problem(
            "invalid_request_error",
            f"{too_big[0]}.image.source: At least one of the image dimensions exceed max allowed size{many}: "
            f"{side} pixels",
            {"error_code": "image_dimensions_too_large", "max_side_length_pixels": side, "paths": too_big},
        )
    page_limit = MAX_PDF_PAGES[0] if spec.max_input_tokens < 1_000_000 else MAX_PDF_PAGES[1]
    if pages > page_limit:
        return _invalid(f"A maximum of {page_limit} PDF pages may be provided.")
    return None


# -- API version 2026-10-21 (/docs/en/api/versioning) -----------------------------------------
def _version_rules(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if ctx.version != V2026:
        return None
    for name in SAMPLING:
        if name in params:  # even at its default value, even null: the field no longer exists
            return _invalid(f"{name}: Extra inputs are not permitted")
    for i, msg in enumerate(params["messages"]):
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            if msg.get("role") == "assistant" and block.get("type") == "document":
                return _invalid(
                    f"messages.{i}.content.{j}: document blocks cannot be placed in an assistant message; "
                    "put the document in a user message"
                )
            if msg.get("role") == "user" and _has_citations(block):
                return _invalid(
                    f"messages.{i}.content.{j}: text blocks in user messages cannot carry citations; "
                    "remove the citations array"
                )
    return None


def _has_citations(block: dict[str, Any]) -> bool:
    """A text block with a non-empty ``citations`` array, directly or inside a search_result block."""
    if block.get("type") == "text":
        return bool(block.get("citations"))
    if block.get("type") == "search_result":
        inner = block.get("content")
        return isinstance(inner, list) and any(isinstance(b, dict) and _has_citations(b) for b in inner)
    return False


# -- per-model rules (/docs/en/about-claude/model-deprecations and each model's pages) --------
def _sampling(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if ctx.version == V2026 or ctx.counting:
        return None
    given = {k: params[k] for k in SAMPLING if params.get(k) is not None}
    for name in ("temperature", "top_p"):
        v = given.get(name)
        if v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return _invalid(f"{name}: Input should be a valid number")
        if not 0 <= v <= 1:
            return _invalid(f"{name}: Input should be {'greater than or equal to 0' if v < 0 else 'less than or equal to 1'}")
    if "top_k" in given and (not isinstance(given["top_k"], int) or isinstance(given["top_k"], bool)):
        return _invalid("top_k: Input should be a valid integer")
    if spec.sampling == "defaults_only":
        # temperature and top_p default to 1; top_k has no default value, so any value is a change
        for name in SAMPLING:
            if name in given and not (name != "top_k" and given[name] == 1):
                return _invalid(f"`{name}` is deprecated for this model.")
    if spec.sampling == "one_of" and "temperature" in given and "top_p" in given:
        return _invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    return None


def _prefill(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if spec.prefill or ctx.counting:
        return None
    if params["messages"][-1].get("role") == "assistant":
        return _invalid(
            "This model does not support assistant message prefill. The conversation must end with a user message."
        )
    return None


def _effort(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    oc = params.get("output_config")
    if oc is None:
        return None
    if not isinstance(oc, dict):
        return _invalid("output_config: Input should be a valid dictionary")
    effort = oc.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        return _invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    if not spec.efforts:
        return _invalid("output_config.effort: the effort parameter is not supported for this model")
    if effort not in spec.efforts:
        return _invalid(
            f'output_config.effort: "{effort}" is not supported for this model; '
            f"supported values: {', '.join(spec.efforts)}"
        )
    return None


def _thinking(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    thinking = params.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        return _invalid("thinking: Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        return _invalid(
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            + ", ".join(repr(t) for t in THINKING_TYPES)
        )
    display = thinking.get("display")
    if display is not None and display not in ("summarized", "omitted"):
        return _invalid("thinking.display: Input should be 'summarized' or 'omitted'")
    if kind not in spec.thinking_types:
        return _invalid(_unsupported_thinking(kind, spec))
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if budget is None:
            return _invalid("thinking.enabled.budget_tokens: Field required")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return _invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
        if budget < 1024:
            return _invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        mt = params.get("max_tokens")
        if not ctx.counting and isinstance(mt, int) and mt <= budget:
            return _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if kind in ("disabled", "between_tools") and spec.thinking_off_efforts is not None:
        effort = effort_of(params, spec)
        if effort is not None and effort not in spec.thinking_off_efforts:
            allowed = ", ".join(f'"{e}"' for e in spec.thinking_off_efforts)
            return _invalid(
                f'"thinking.type.{kind}" cannot be used with output_config.effort "{effort}" on this model; '
                f"use effort {allowed}, or adaptive thinking."
            )
    return None


def _unsupported_thinking(kind: str, spec: ModelSpec) -> str:
    if kind == "adaptive":
        return (
            '"thinking.type.adaptive" is not supported for this model. '
            'Use "thinking.type.enabled" with "budget_tokens".'
        )
    if kind == "disabled" and "between_tools" in spec.thinking_types:
        return (
            '"thinking.type.disabled" is not supported for this model. '
            'Use "thinking.type.between_tools" to turn off up-front thinking.'
        )
    if kind == "between_tools":
        return '"thinking.type.between_tools" is not supported for this model.'
    return (
        f'"thinking.type.{kind}" is not supported for this model. '
        'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
    )


def _tool_choice(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if not forces_tool(params):
        return None
    if not spec.forced_tool_choice:
        return _invalid('tool_choice: type "tool" and "any" are not supported for this model.')
    thinking = params.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return _invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if forced_tool(params) is False:
        return _invalid("tool_choice: the named tool is not among the `tools` given")
    return None


def _output_shape(params: dict[str, Any], spec: ModelSpec, ctx: Context) -> Problem | None:
    if output_schema(params) is False:
        return _invalid("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")
    return None


def _prompt_length(
    params: dict[str, Any], spec: ModelSpec, size_hint: int | None, files: FileLookup | None
) -> Problem | None:
    # Counting costs a pass over the prompt; a body too small to reach the window cannot fail.
    if size_hint is not None and size_hint * 0.4 < spec.max_input_tokens:
        return None
    n = count_input_tokens(params, files=files)
    if n > spec.max_input_tokens:
        return _invalid(f"prompt is too long: {n} tokens > {spec.max_input_tokens} maximum")
    return None


def check_version(header: str | None) -> str:
    """The request's API version, or the 400 the API answers for a missing or unknown one."""
    if header is None or not header.strip():
        raise APIError("invalid_request_error", "anthropic-version: header is required")
    value = header.strip()
    if value not in API_VERSIONS:
        raise APIError(
            "invalid_request_error",
            f'anthropic-version: "{value}" is not a valid version; accepted values: {", ".join(API_VERSIONS)}',
        )
    return value
