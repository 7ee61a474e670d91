"""The official OpenAI Python client against verity-gateway: a chat completion and a streamed one
(or, with --completion, the legacy completions endpoint), printed as one JSON object. Used by
e2e/tests/gateway.test.js; runs in the venv scripts/setup.sh makes ($VERITY_CACHE/openai-venv).

  python openai_client.py --base-url http://127.0.0.1:8080/v1 --api-key sk-... --model M
                          [--chat TEXT] [--prompt TEXT [--completion-model M2]] [--max-tokens 16] [--seed 0]
"""
import argparse
import json

import openai


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--chat")
    p.add_argument("--prompt")
    p.add_argument("--completion-model", help="the model of --prompt (default: --model)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key=a.api_key, timeout=600, max_retries=0)
    out = {"client": f"openai-python {openai.__version__}"}
    models = client.models.list()
    out["models"] = [m.id for m in models.data]
    if a.chat is not None:
        messages = [{"role": "user", "content": a.chat}]
        r = client.chat.completions.create(model=a.model, messages=messages, max_tokens=a.max_tokens,
                                           temperature=0, seed=a.seed)
        out["chat"] = {"id": r.id, "text": r.choices[0].message.content,
                       "finish_reason": r.choices[0].finish_reason,
                       "usage": r.usage.model_dump(), "verity": r.model_extra["verity"]}
        text, verity, chunks = "", None, 0
        for chunk in client.chat.completions.create(model=a.model, messages=messages, max_tokens=a.max_tokens,
                                                    temperature=0, seed=a.seed, stream=True):
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if (chunk.model_extra or {}).get("verity"):
                verity = chunk.model_extra["verity"]
        out["stream"] = {"text": text, "chunks": chunks, "verity": verity}
    if a.prompt is not None:
        r = client.completions.create(model=a.completion_model or a.model, prompt=a.prompt, max_tokens=a.max_tokens, temperature=0,
                                      seed=a.seed)
        out["completion"] = {"id": r.id, "text": r.choices[0].text, "verity": r.model_extra["verity"]}
    # An error the client raises as its own type: an unknown model is NotFoundError (404).
    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
        out["unknown_model"] = "accepted"
    except openai.NotFoundError as e:
        out["unknown_model"] = {"status": e.status_code, "code": e.code}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
