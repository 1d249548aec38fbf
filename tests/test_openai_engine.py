"""The OpenAI-compatible engine against a fake completion server (a real HTTP server on 127.0.0.1, in a thread):
request fields, prompt order, round-robin over replicas, retries, failover, and the errors."""

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from negtune.data.io import DataError
from negtune.data.prompts import render_chat
from negtune.rollout.engines.base import Completion, SamplingConfig
from negtune.rollout.engines.openai import OpenAIEngine

FAST = dict(backoff=0.001, timeout=5.0)  # retries in milliseconds, so each test runs well under a second


def fake_tokens(seed: int, prompt_len: int, max_tokens: int) -> list[int]:
    """The fake server's 'sample': a deterministic function of the seed and the prompt, 1 to 5 ordinary tokens."""
    k = min(max_tokens, 1 + (seed + prompt_len) % 5)
    return [3 + (seed * 7 + prompt_len + t) % 250 for t in range(k)]


class FakeServer:
    """``/v1/models`` and ``/v1/completions`` as vLLM answers them. Failure knobs apply to the first ``fail``
    completion requests: ``status`` (500, 429, 400...) with ``message``, or ``status=None`` to drop the
    connection without an answer. ``choice_delta`` returns n + delta choices; ``token_ids=False`` omits them."""

    def __init__(self, tokenizer, model_id="fake-model"):
        self.tokenizer, self.model_id = tokenizer, model_id
        self.fail, self.status, self.message = 0, 500, "overloaded"
        self.choice_delta, self.token_ids = 0, True
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self.reply(200, {"object": "list", "data": [{"id": server.model_id, "max_model_len": 512}]})
                else:
                    self.reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    failing = len(server.requests) <= server.fail
                if self.path != "/v1/completions":
                    return self.reply(404, {"error": {"message": f"no route {self.path}"}})
                if failing and server.status is None:
                    self.close_connection = True  # no answer at all: the client sees a dropped connection
                    return
                if failing:
                    return self.reply(server.status, {"error": {"message": server.message}})
                self.reply(200, {"choices": server.choices(body)})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def choices(self, body):
        out = []
        for j in range(body["n"] + self.choice_delta):
            seed = body["seed"] + j
            ids = fake_tokens(seed, len(body["prompt"]), body["max_tokens"])
            choice = {"index": j, "text": self.tokenizer.decode(ids, skip_special_tokens=True),
                      "finish_reason": "length" if len(ids) == body["max_tokens"] else "stop"}
            if self.token_ids:
                choice["token_ids"] = ids
            if body.get("logprobs") is not None:
                choice["logprobs"] = {"token_logprobs": [-0.5 * (t + 1) - seed / 100 for t in range(len(ids))]}
            out.append(choice)
        return out[::-1]  # out of order: the engine must sort by index

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture(scope="module")
def tokenizer():
    from negtune.models.tiny import train_tokenizer

    return train_tokenizer(["what is 2+3?", "the answer is 5", "hello world"], vocab_size=300)


@pytest.fixture
def make_server(tokenizer):
    servers = []

    def make(**kwargs):
        servers.append(FakeServer(tokenizer, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def make_engine(tokenizer):
    engines = []

    def make(urls, **kwargs):
        engines.append(OpenAIEngine(urls, tokenizer, **{**FAST, **kwargs}))
        return engines[-1]

    yield make
    for e in engines:
        e.close()
        e.close()  # idempotent


def dead_url() -> str:
    """A local port with nothing listening (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


PROMPTS = [[{"role": "user", "content": "what is " + "2+3" * (k + 1) + "?"}] for k in range(5)]


def completions(server):
    return [r for r in server.requests if "prompt" in r]


def test_request_fields_and_parsing(make_server, make_engine, tokenizer):
    server = make_server()
    engine = make_engine([server.url + "/v1/"])  # a trailing /v1/ is normalised away
    assert (engine.name, engine.model, engine.max_model_len) == ("openai", "fake-model", 512)
    sampling = SamplingConfig(n=3, temperature=0.7, top_p=0.9, max_new_tokens=4, seed=5, stop=["\n\n"], logprobs=True)
    out = engine.generate(PROMPTS[:3], sampling)

    encoded = [render_chat(tokenizer, p) for p in PROMPTS[:3]]
    by_prompt = {tuple(r["prompt"]): r for r in completions(server)}
    assert len(by_prompt) == 3 and len(server.requests) == 3  # one request per prompt
    for i, ids in enumerate(encoded):
        body = by_prompt[tuple(ids)]
        assert body == {"model": "fake-model", "prompt": ids, "n": 3, "seed": 5 + 3 * i, "temperature": 0.7,
                        "top_p": 0.9, "max_tokens": 4, "stop": ["\n\n"], "include_stop_str_in_output": True,
                        "skip_special_tokens": True, "return_token_ids": True, "logprobs": 0}
        assert len(out[i]) == 3
        for j, c in enumerate(out[i]):  # prompt order, choices by index
            seed = 5 + 3 * i + j
            ids_j = fake_tokens(seed, len(ids), 4)
            assert c == Completion(tokenizer.decode(ids_j, skip_special_tokens=True), ids_j,
                                   "length" if len(ids_j) == 4 else "stop",
                                   [-0.5 * (t + 1) - seed / 100 for t in range(len(ids_j))])
    assert {c.finish_reason for row in out for c in row} == {"length", "stop"}

    engine.generate(PROMPTS[:1], SamplingConfig(n=1, temperature=0, max_new_tokens=8))  # greedy, no stop/logprobs
    body = server.requests[-1]
    assert body["temperature"] == 0 and "stop" not in body and "logprobs" not in body


def test_two_servers_share_prompts(make_server, make_engine):
    a, b = make_server(), make_server()
    sampling = SamplingConfig(n=2, max_new_tokens=5, seed=1, logprobs=True)
    out = make_engine([a.url, b.url]).generate(PROMPTS, sampling)
    assert sorted(r["seed"] for r in completions(a)) == [1, 5, 9]  # prompts 0, 2, 4
    assert sorted(r["seed"] for r in completions(b)) == [3, 7]  # prompts 1, 3
    single = make_server()
    assert out == make_engine([single.url]).generate(PROMPTS, sampling)


@pytest.mark.parametrize("status", [500, 429, None])  # None: the connection is dropped without an answer
def test_retries_then_succeeds(make_server, make_engine, status):
    server = make_server()
    server.fail, server.status = 2, status
    out = make_engine([server.url], max_retries=5).generate(PROMPTS[:1], SamplingConfig(n=2, max_new_tokens=4))
    assert len(completions(server)) == 3 and len(out[0]) == 2


def test_failover_past_a_dead_replica(make_server, make_engine):
    live = make_server()
    engine = make_engine([live.url, live.url], max_retries=3)
    engine.urls[0] = dead_url()  # the replica died after start-up
    out = engine.generate(PROMPTS, SamplingConfig(n=2, max_new_tokens=4))
    assert [len(row) for row in out] == [2] * len(PROMPTS) and len(completions(live)) == len(PROMPTS)


def test_retry_budget_spent(make_server, make_engine):
    server = make_server()
    server.fail = 10**9
    with pytest.raises(DataError) as err:
        make_engine([server.url], max_retries=2).generate(PROMPTS[:1], SamplingConfig())
    assert server.url in str(err.value) and "HTTP 500" in str(err.value) and "resumes" in str(err.value)
    assert len(completions(server)) == 3  # the first try and 2 retries

    a, b = make_server(), make_server()
    engine = make_engine([a.url, b.url], max_retries=3)
    a.stop(), b.stop()  # both replicas gone after start-up
    with pytest.raises(DataError) as err:
        engine.generate(PROMPTS[:2], SamplingConfig())
    assert a.url in str(err.value) and b.url in str(err.value)


def test_one_failure_ends_the_call_without_waiting_for_retries(make_server, make_engine):
    server = make_server()
    server.fail, server.status, server.message = 1, 400, "bad request"
    engine = make_engine([server.url, server.url], max_retries=3, backoff=20.0)
    engine.urls[0] = dead_url()  # prompt 0 is refused and sleeps 20 s before its retry; prompt 1 gets the 400
    start = time.monotonic()
    with pytest.raises(DataError, match="bad request"):
        engine.generate(PROMPTS[:2], SamplingConfig())
    assert time.monotonic() - start < 5


def test_dead_url_fails_fast_at_construction(make_engine):
    url = dead_url()
    with pytest.raises(DataError, match=url):
        make_engine([url], max_retries=2)


def test_servers_serving_different_models_refused(make_server, make_engine):
    a, b = make_server(), make_server(model_id="other-model")
    with pytest.raises(DataError) as err:
        make_engine([a.url, b.url])
    assert all(s in str(err.value) for s in (a.url, b.url, "fake-model", "other-model"))
    assert make_engine([a.url, b.url], model="fake-model").model == "fake-model"  # named: no refusal


def test_client_error_not_retried(make_server, make_engine):
    server = make_server()
    server.fail, server.status, server.message = 1, 400, "prompt has 9999 tokens, the context is 512"
    with pytest.raises(DataError) as err:
        make_engine([server.url], max_retries=5).generate(PROMPTS[:1], SamplingConfig())
    assert "9999 tokens" in str(err.value) and server.url in str(err.value) and "400" in str(err.value)
    assert len(completions(server)) == 1


def test_missing_token_ids_falls_back_to_tokenizing(make_server, make_engine, tokenizer, caplog):
    server = make_server()
    server.token_ids = False
    with caplog.at_level(logging.WARNING, logger="negtune.rollout.engines.openai"):
        out = make_engine([server.url]).generate(PROMPTS[:3], SamplingConfig(n=2, max_new_tokens=5, logprobs=True))
    warnings = [r for r in caplog.records if "token_ids" in r.getMessage()]
    assert len(warnings) == 1  # once per engine, not per completion
    for c in (c for row in out for c in row):
        assert c.token_ids == tokenizer.encode(c.text, add_special_tokens=False) and c.token_ids
        assert c.logprobs is None  # they would not line up with re-tokenized ids


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_number_of_choices(make_server, make_engine, delta):
    server = make_server()
    server.choice_delta = delta
    with pytest.raises(DataError, match=rf"{server.url}.*returned {3 + delta} choices.*n=3"):
        make_engine([server.url]).generate(PROMPTS[:1], SamplingConfig(n=3))
