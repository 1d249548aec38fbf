"""Rollouts from OpenAI-compatible completion servers (``vllm serve``, SGLang, TGI), standard library only.

The prompts are rendered to token ids here, with the same chat template as the other engines and the trainers
(:func:`negtune.data.prompts.render_chat`), and sent as token-id prompts to ``/v1/completions``, so the
server's own chat template never enters. Several server replicas share the prompts; a request that fails with
a connection error, a timeout, HTTP 429 or 5xx is retried on the next replica, with exponential backoff.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from negtune.data.io import DataError
from negtune.data.prompts import render_chat
from negtune.rollout.engines.base import Completion, SamplingConfig
from negtune.rollout.engines.vllm import request_seed

logger = logging.getLogger(__name__)

MAX_DELAY_S = 30.0


class EngineUnavailable(DataError):
    """The retry budget of a request is spent: no server answered it."""


class _Retryable(Exception):
    """A failure worth retrying (on the next server)."""


def normalize_url(url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` all name the same server root."""
    url = url.strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIEngine:
    """Samples from one or more OpenAI-compatible servers, one ``/v1/completions`` request per prompt.

    ``max_model_len`` is the served context length when the server reports it (vLLM does), else None.
    ``concurrency`` bounds the requests in flight per server. Call :meth:`close` (or use ``with``) when done.
    """

    name = "openai"

    def __init__(self, base_urls: list[str], tokenizer, model: str | None = None, timeout: float = 600.0,
                 max_retries: int = 5, backoff: float = 1.0, concurrency: int = 8):
        if isinstance(base_urls, str):
            base_urls = base_urls.split(",")
        self.urls = [normalize_url(u) for u in base_urls if u.strip()]
        if not self.urls:
            raise ValueError("OpenAIEngine needs at least one server URL")
        self.tokenizer, self.timeout = tokenizer, timeout
        self.max_retries, self.backoff = max_retries, backoff
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0")
        self._closed = False
        self._aborts: set[threading.Event] = set()  # one per running generate(); set to cut its retry sleeps short
        self._warn_lock, self._warned = threading.Lock(), False
        served = {url: self._get_models(url) for url in self.urls}  # fail fast: every server must answer
        if model is None:
            ids = {url: (data[0].get("id") if data else None) for url, data in served.items()}
            first_url, model = next(iter(ids.items()))
            for url, other in ids.items():
                if other != model:
                    raise DataError(f"the servers serve different models: {first_url} serves {model!r}, "
                                    f"{url} serves {other!r}; pass the model name or use matching replicas")
            if model is None:
                raise DataError(f"{first_url}/v1/models lists no model")
        self.model = model
        lengths = [e.get("max_model_len") for data in served.values() for e in data if e.get("id") == model]
        lengths = [x for x in lengths if isinstance(x, int)]
        self.max_model_len = min(lengths) if lengths else None
        self._pool = ThreadPoolExecutor(max_workers=concurrency * len(self.urls), thread_name_prefix="negtune-openai")

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stops the thread pool and cuts short any retry sleeps; safe to call more than once."""
        self._closed = True
        for abort in list(self._aborts):
            abort.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- HTTP -------------------------------------------------------------------------------------------
    def _call(self, url: str, path: str, body: dict | None = None) -> Any:
        """One HTTP exchange; raises :class:`_Retryable` for failures another try may cure, DataError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                message = e.read().decode("utf-8", "replace")[:300]
            except (OSError, http.client.HTTPException):
                message = e.reason
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code} from {url}{path}: {message}") from None
            raise DataError(f"{url}{path} refused the request (HTTP {e.code}): {message}") from None
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, truncated
            raise _Retryable(f"{url}{path}: {type(e).__name__}: {e}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise DataError(f"{url}{path} answered with invalid JSON: {raw[:300]!r}") from None

    def _with_retries(self, urls: list[str], path: str, body: dict | None, abort: threading.Event) -> tuple[str, Any]:
        """``(url, answer)``; try ``k`` goes to ``urls[k % len(urls)]``, after ``backoff * 2**(k-1)`` seconds."""
        errors, tried = [], []
        for attempt in range(self.max_retries + 1):
            if attempt:
                if abort.wait(min(self.backoff * 2 ** (attempt - 1), MAX_DELAY_S)):
                    break  # generate() already failed elsewhere, or close()
            url = urls[attempt % len(urls)]
            if url not in tried:
                tried.append(url)
            try:
                return url, self._call(url, path, body)
            except _Retryable as e:
                errors.append(str(e))
        raise EngineUnavailable(
            f"no answer after {len(errors)} tries to {', '.join(tried)}; last error: {errors[-1] if errors else '-'}. "
            "Finished shards are kept: rerunning the same command resumes from there.")

    def _get_models(self, url: str) -> list[dict]:
        _, answer = self._with_retries([url], "/v1/models", None, threading.Event())
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise DataError(f"{url}/v1/models: expected {{'data': [...]}}, got {str(answer)[:300]}")
        return [e for e in data if isinstance(e, dict)]

    # ---- sampling ---------------------------------------------------------------------------------------
    def _body(self, prompt_ids: list[int], sampling: SamplingConfig, i: int) -> dict:
        body = {
            "model": self.model, "prompt": list(prompt_ids), "n": sampling.n,
            # vLLM seeds sample j of a request with seed + j: spacing prompts by n keeps every stream distinct
            "seed": request_seed(sampling.seed, i, sampling.n),
            "temperature": sampling.temperature,  # 0 = greedy
            "top_p": sampling.top_p, "max_tokens": sampling.max_new_tokens,
            "include_stop_str_in_output": True,  # as HF generate and the vLLM engine: the stop string stays
            "skip_special_tokens": True,
            "return_token_ids": True,  # vLLM extension: choices[k].token_ids
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.logprobs:
            body["logprobs"] = 0  # the sampled tokens' own log-probs, in choices[k].logprobs.token_logprobs
        return body

    def _completion(self, choice: dict, want_logprobs: bool) -> Completion:
        text = choice.get("text") or ""
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        logprobs = None
        if want_logprobs and isinstance(choice.get("logprobs"), dict):
            lp = choice["logprobs"].get("token_logprobs") or []
            logprobs = [float("nan") if x is None else float(x) for x in lp]
        token_ids = choice.get("token_ids")
        if token_ids is None:
            with self._warn_lock:
                if not self._warned:
                    self._warned = True
                    logger.warning("the server returned no token_ids (not vLLM, or a vLLM without return_token_ids):"
                                   " re-tokenizing the completion text, so token ids may differ from those sampled"
                                   " and log-probs would not line up with them; log-probs are dropped")
            return Completion(text, self.tokenizer.encode(text, add_special_tokens=False), reason, None)
        return Completion(text, [int(t) for t in token_ids], reason, logprobs)

    def _sample_one(self, i: int, prompt_ids: list[int], sampling: SamplingConfig,
                    abort: threading.Event) -> list[Completion]:
        urls = self.urls[i % len(self.urls):] + self.urls[: i % len(self.urls)]  # round-robin, then failover
        url, answer = self._with_retries(urls, "/v1/completions", self._body(prompt_ids, sampling, i), abort)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or len(choices) != sampling.n:
            got = len(choices) if isinstance(choices, list) else "no"
            raise DataError(f"{url}/v1/completions returned {got} choices for prompt {i}, expected n={sampling.n}")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        return [self._completion(c, sampling.logprobs) for c in choices]

    def generate(self, prompts: list[list[dict[str, Any]]], sampling: SamplingConfig) -> list[list[Completion]]:
        """``sampling.n`` completions per prompt, in prompt order; prompt ``i`` goes to server ``i mod len(urls)``
        first. A failure on any prompt is raised at once; the requests not yet sent are cancelled and those
        waiting to retry give up."""
        return self.generate_ids([render_chat(self.tokenizer, p) for p in prompts], sampling)

    def generate_ids(self, encoded: list[list[int]], sampling: SamplingConfig) -> list[list[Completion]]:
        """``generate`` for prompts already tokenized (evals with their own prompt templates)."""
        if self._closed:
            raise RuntimeError("OpenAIEngine.generate after close()")
        abort = threading.Event()
        self._aborts.add(abort)
        futures = [self._pool.submit(self._sample_one, i, ids, sampling, abort) for i, ids in enumerate(encoded)]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)  # a failure on any prompt ends the call, not the first one
            for f in futures:
                if f.done() and f.exception() is not None:
                    raise f.exception()
            return [f.result() for f in futures]
        except BaseException:
            abort.set()  # requests still retrying give up at once, so the caller (and interpreter exit) need not wait
            for f in futures:
                f.cancel()
            raise
        finally:
            self._aborts.discard(abort)
