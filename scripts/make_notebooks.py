"""Write the tutorial notebooks in ``notebooks/`` from the cells below.

The notebooks are generated so that they stay small, reviewable and free of
outputs; edit the cells here and run::

    python scripts/make_notebooks.py           # (re)write notebooks/*.ipynb
    python scripts/make_notebooks.py --check   # exit 1 if a notebook differs

``tests/test_notebooks.py`` executes every notebook against the built-in
simulator and checks that the committed files match this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

TEAMS = "billing,shipping,technical,account,returns"

TRIAGE = """\
You triage customer support tickets for an online shop.
Which team should handle this ticket?

Ticket: {{ text }}"""

SIMULATED_NOTE = (
    "> **Offline.** Everything here runs against batch_magic's built-in simulator: a local "
    "server that speaks the Message Batches API and answers with a deterministic fake model. "
    "The answers are **SIMULATED**, not Claude's, so accuracy figures below measure the "
    "simulator, not the model. No API key, no network, no cost."
)

Cell = tuple[str, str] | tuple[str, str, list[str]]


def md(text: str) -> Cell:
    return ("markdown", text.strip("\n"))


def code(text: str, *tags: str) -> Cell:
    return ("code", text.strip("\n"), list(tags))


# --------------------------------------------------------------------------------------
# 01 quickstart
# --------------------------------------------------------------------------------------
QUICKSTART: list[Cell] = [
    md(f"""
# Quickstart: 300 support tickets, one cell

`%%batch` sends every row of a DataFrame to Claude through Anthropic's Message Batches
API, at half the realtime price. A panel shows the job while the kernel stays free, and
the answers come back as new columns of the same DataFrame.

{SIMULATED_NOTE}
"""),
    md("""
Load the extension and start the simulator for this session. With a real key you would
skip the second line and set `ANTHROPIC_API_KEY` instead.
"""),
    code("""
%load_ext batch_magic
%batch simulator start
"""),
    md("""
The data: 300 synthetic tickets for the made-up shop *Northwind Gadgets*, shipped with
the package. Each has gold labels (`category`, `sentiment`, `urgent`) so we can score the
answers.
"""),
    code("""
import pandas as pd

from batch_magic import load_tickets

df = load_tickets()
print(f"{len(df)} tickets; gold columns: category, sentiment, urgent")
df[["ticket_id", "text", "category"]].head()
"""),
    md("""
## The cell

The first line names the DataFrame and the options; the body is a Jinja2 template over
its columns (`{{ text }}` is each row's text). `--labels` turns the answer into one of
those labels, stored as a pandas `Categorical`.

The cell **returns at once**: the panel below follows the job (state, batches, elapsed
time, cost estimate, a Cancel button) and fills in when it ends. Its header says
SIMULATED when the answers come from the simulator.
"""),
    code(f"""
%%batch df --out team --labels {TEAMS}
{TRIAGE}
"""),
    md("""
The kernel is free while the batch runs (a real batch takes minutes to hours). This cell
runs straight away:
"""),
    code("""
# Runs while the batch is in flight: the kernel is not blocked.
print(df["category"].value_counts().to_string())
%batch status
"""),
    md("""
`%batch wait` blocks until the job has ended and its columns are merged. In a script, or
in a cell whose next line reads the columns, put `--wait` on the `%%batch` line instead.
"""),
    code("""
%batch wait
"""),
    md("""
## The answers, merged

The job added `team` (the label), `team_status` (succeeded, errored, invalid, expired,
canceled or skipped), `team_error`, and token counts. The 5 empty tickets were
`skipped` (never sent), and the 10 tickets whose text repeats another's were asked once.
"""),
    code("""
print([c for c in df.columns if c.startswith("team")])
print("SIMULATED answers (built-in simulator, not Claude):")
df[["ticket_id", "text", "category", "team", "team_status"]].head(10)
"""),
    code("""
df["team_status"].value_counts()
"""),
    md("""
## Accuracy against the gold labels

Both columns are Categoricals with the same five teams, so they compare directly.
"""),
    code("""
answered = df["team_status"] == "succeeded"
correct = df.loc[answered, "team"].astype(str) == df.loc[answered, "category"].astype(str)
print(
    f"Accuracy against the gold 'category' column: {correct.mean():.1%} "
    f"of {answered.sum()} answered tickets (SIMULATED answers)"
)
"""),
    code("""
confusion = pd.crosstab(
    df.loc[answered, "category"],
    df.loc[answered, "team"],
    rownames=["gold category"],
    colnames=["team (SIMULATED answer)"],
)
confusion
"""),
    md("""
## The journal

Every job is recorded in `.batch_magic/` beside the notebook before anything is sent:
re-running the `%%batch` cell above re-attaches to this job instead of paying again, and
`%batch attach` picks it up after a kernel restart (see `03_reliability.ipynb`).
"""),
    code("""
%batch list
"""),
    md("""
## With the real API

```python
%batch simulator stop
%env ANTHROPIC_API_KEY=sk-ant-...
```

then run the same `%%batch` cell. Add `--dry-run` first to see the cost estimate and the
first prompts without sending anything, or `--pilot 5` to try five rows through the
realtime API (see `04_batch_vs_realtime.ipynb`). `%%batch?` lists every option.
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 02 structured extraction
# --------------------------------------------------------------------------------------
EXTRACT = """\
Extract the fields of this support ticket.

Ticket from {{ customer }}:
{{ text }}"""

STRUCTURED: list[Cell] = [
    md(f"""
# Structured extraction: typed columns from a schema

`--labels` gives one label per row. `--schema` gives several fields per row, each in its
own typed column: the schema is sent as the answer's required shape (structured
outputs), and every answer is validated again when it comes back. An answer that does not
fit is marked `invalid` in its row; it never fails the job.

{SIMULATED_NOTE}
"""),
    code("""
%load_ext batch_magic
%batch simulator start
"""),
    code("""
import pandas as pd

from batch_magic import load_tickets

df = load_tickets()
PRODUCTS = sorted(df["product"].unique())
print(len(PRODUCTS), "products:", ", ".join(PRODUCTS))
"""),
    md("""
## 1. A JSON-schema dict

Four fields: who wrote, which product, the order number if there is one, and whether it
is urgent. `enum` restricts the product to the shop's twelve; `["string", "null"]` lets
the order number be missing.
"""),
    code("""
ticket_schema = {
    "type": "object",
    "properties": {
        "customer": {"type": "string", "description": "the customer's name"},
        "product": {"type": "string", "enum": PRODUCTS},
        "order_number": {
            "type": ["string", "null"],
            "description": "the order number, like NW-12345, or null if there is none",
        },
        "urgent": {"type": "boolean", "description": "true if the customer needs help today"},
    },
    "required": ["customer", "product", "order_number", "urgent"],
}
"""),
    md("""
`--schema` takes the *name* of the dict. `--wait` blocks until the columns are merged,
because the next cells read them.
"""),
    code(f"""
%%batch df --out fields --schema ticket_schema --wait
{EXTRACT}
"""),
    md("""
One column per field, typed from the schema: strings stay `string`, the enum becomes a
`category`, the boolean a nullable `boolean`. `fields` itself keeps the raw JSON answer.
"""),
    code("""
df.filter(like="fields").dtypes
"""),
    code("""
print("SIMULATED answers (built-in simulator, not Claude):")
df[["ticket_id", "fields_customer", "fields_product", "fields_order_number", "fields_urgent", "fields_status"]].head(8)
"""),
    md("""
The data set knows the true product and urgency of every ticket, so the extracted fields
can be scored:
"""),
    code("""
ok = df["fields_status"] == "succeeded"
product_acc = (df.loc[ok, "fields_product"].astype(str) == df.loc[ok, "product"].astype(str)).mean()
urgent_acc = (df.loc[ok, "fields_urgent"] == df.loc[ok, "urgent"]).mean()
print(f"product matches the gold column in {product_acc:.0%} of rows, urgent in {urgent_acc:.0%} (SIMULATED answers)")
"""),
    md("""
## 2. A pydantic model

The same fields as a pydantic (v2) model class. The model's JSON schema is sent, and each
answer is validated by the model itself, so validators and constraints apply row by row.
`Literal[...]` over the product names becomes an enum, hence a `category` column again.

To show what an answer that does not fit looks like, this job sets `--max-tokens 32`,
deliberately too small for some answers: those are cut off mid-JSON.
"""),
    code("""
from typing import Literal

from pydantic import BaseModel, Field


class Ticket(BaseModel):
    customer: str = Field(description="the customer's full name")
    product: Literal[tuple(PRODUCTS)]  # one of the twelve product names
    order_number: str | None = Field(None, description="like NW-12345; null if there is none")
    urgent: bool
"""),
    code(f"""
%%batch df --out parsed --schema Ticket --max-tokens 32 --wait
{EXTRACT}
"""),
    code("""
df["parsed_status"].value_counts()
"""),
    md("""
## Invalid rows are marked, not lost

A row whose answer does not validate gets status `invalid`, an explanation in
`parsed_error`, and keeps the raw answer in `parsed`; its field columns stay empty.
`parsed_stop_reason` says why here: the answer hit `max_tokens`.
"""),
    code("""
invalid = df["parsed_status"] == "invalid"
print(f"{invalid.sum()} invalid rows (SIMULATED answers)")
df.loc[invalid, ["ticket_id", "parsed_stop_reason", "parsed_error", "parsed"]].head()
"""),
    md("""
The fix is a larger `--max-tokens`. That changes the job's parameters, so it is a new job
(an identical cell would re-attach to the old one instead), and its columns replace the
old ones. For rows that failed for a passing reason (an overloaded server, say),
`%batch retry JOB df` sends only those rows again; see `03_reliability.ipynb`.
"""),
    code(f"""
%%batch df --out parsed --schema Ticket --max-tokens 200 --wait
{EXTRACT}
"""),
    code("""
print(df["parsed_status"].value_counts().to_string())
print("SIMULATED answers (built-in simulator, not Claude):")
df[["ticket_id", "parsed_customer", "parsed_product", "parsed_order_number", "parsed_urgent"]].head()
"""),
    md("""
## 3. Free-form JSON

`--json` is the third way: no schema is sent, so the prompt itself asks for a JSON object
and names its keys; the answer is parsed as a JSON object and its top-level keys become
columns, typed by what they hold. (The simulator reads the request the same way: a prompt
that asks for JSON gets a JSON object with the keys it names.) Here on a few tickets:
"""),
    code("""
sample = df.head(8).copy()
"""),
    code("""
%%batch sample --out info --json --wait
Return a JSON object with keys customer, product and is_urgent for this ticket.

Ticket from {{ customer }}:
{{ text }}
"""),
    code("""
print(sample["info_status"].value_counts().to_string())
print("SIMULATED answers (built-in simulator, not Claude):")
sample[["ticket_id", "info_customer", "info_product", "info_is_urgent"]]
"""),
    md("""
With the Python API the same jobs are
`batch_magic.submit(df, template, schema=Ticket, out="ticket")` or
`batch_magic.submit(df, template, json=True, out="info")`.
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 03 reliability
# --------------------------------------------------------------------------------------
RELIABILITY: list[Cell] = [
    md(f"""
# Reliability: the journal, re-attaching, retries and cancel

A batch can run for hours, and a lot can happen to a notebook in that time: the cell gets
run twice, the kernel dies, the API is overloaded, you change your mind. This notebook
shows what batch_magic does in each case.

{SIMULATED_NOTE}
"""),
    code("""
%load_ext batch_magic
%batch simulator start --processing-time 3
"""),
    md("""
A small helper asks the simulator itself how many batches it holds, so we can check
that nothing is paid for twice. The simulator keeps its batches in `.batch_magic/`
beside the notebook, shared with the other notebooks of this folder, so we compare the
count before and after rather than expect a number. (`running_simulators()` lists the
simulators running in this kernel.)
"""),
    code("""
import anthropic
import pandas as pd

from batch_magic import load_tickets
from batch_magic.simulator import running_simulators


def batches_on_server() -> int:
    server = anthropic.Anthropic(api_key="sk-sim-local", base_url=running_simulators()[-1])
    return len(list(server.messages.batches.list()))


df = load_tickets()
"""),
    md("""
## 1. The journal: re-running a cell never pays twice

Before anything is sent, the job is written to `.batch_magic/` beside the notebook: the
prompts, the row map, and a manifest with a fingerprint of every request and parameter.
"""),
    code(f"""
%%batch df --out team --labels {TEAMS} --wait
{TRIAGE}
"""),
    code("""
job = %batch job
first_id = job.id
batches_before = batches_on_server()
print(job.id, job.status.state)
"""),
    md("""
Now the *identical* cell again. Its fingerprint matches the finished job, so the results
come from the journal: no new job, no new batch, no cost. (The same holds for the cell
above if this folder's quickstart notebook already ran this job: it re-attached to it.)
"""),
    code(f"""
%%batch df --out team --labels {TEAMS} --wait
{TRIAGE}
"""),
    code("""
again = %batch job
sent_again = batches_on_server() - batches_before
print("same job:", again.id == first_id, "| new batches on the server:", sent_again)
assert again.id == first_id and sent_again == 0
"""),
    md("""
Anything that changes a request (the template, the labels, the model, `--max-tokens`...)
makes a new job. `--force` sends an identical job again on purpose.

## 2. The kernel dies while a batch runs

The batch lives on Anthropic's side and the journal on disk, so a restart loses nothing:
`%batch attach JOB DF` reads the journal, polls the batch if it is still running,
downloads the results and merges them into `DF`. `JOB` is a job id, a unique prefix of
one, or `last`.

Start a job *without* `--wait`:
"""),
    code("""
%%batch df --out feeling --labels positive,negative,neutral
How does the customer feel? {{ text }}
"""),
    md("""
Give the job a moment to reach the server. `await` lets the kernel's event loop run,
as it does between cells; `time.sleep` would block it. (Run a second time in this
folder, the cell above re-attached to the job of the first run, whose batch is there
already.)
"""),
    code("""
import asyncio

feeling_job = %batch job
while feeling_job.status.batches_submitted < 1:  # its batch exists on the server
    await asyncio.sleep(0.2)
%batch status
"""),
    md("""
Now play the restart: drop the job object and the DataFrame, and load the data again,
as a fresh kernel would. The new `df` has no `feeling` column.

(The kernel does not really restart here, so the engine keeps polling in the background
and `%batch attach` hands its work to the new `df`. After a real restart it starts polling
again from the journal: the same line either way. To try a real restart, run the
simulator in a terminal with `python -m batch_magic.simulator --state sim-state`, point
the notebook at it with `%env ANTHROPIC_BASE_URL=http://127.0.0.1:8765` and
`%env ANTHROPIC_API_KEY=sk-sim-anything`, submit, and use Kernel > Restart.)
"""),
    code("""
servers_before = batches_on_server()
del job, again, feeling_job, df
df = load_tickets()
print("feeling" in df.columns)
"""),
    code("""
%batch attach last df --wait
"""),
    code("""
new_batches = batches_on_server() - servers_before
print("new batches since the restart:", new_batches)
assert new_batches == 0
print(df["feeling_status"].value_counts().to_string())
answered = df["feeling_status"] == "succeeded"
accuracy = (df.loc[answered, "feeling"].astype(str) == df.loc[answered, "sentiment"].astype(str)).mean()
print(f"feeling matches the gold 'sentiment' column in {accuracy:.0%} of rows (SIMULATED answers)")
"""),
    md("""
## 3. Overloaded servers and retries

Real batches sometimes return per-request errors such as `overloaded_error`. Restart the
simulator so that 10% of requests fail that way:
"""),
    code("""
%batch simulator start --processing-time 2 --error-rate overloaded_error=0.1
"""),
    md("""
By default the engine itself sends retriable failures again (up to
`BatchMagic.max_attempts = 3` attempts per request), in new batches, and merges once
everything has settled. To see the failures, allow a single attempt:
"""),
    code("""
%config BatchMagic.max_attempts = 1
"""),
    code("""
%%batch df --out urgency --labels urgent,routine --wait
Does this ticket need an answer today? {{ text }}
"""),
    code("""
failed = df["urgency_status"] == "errored"
print(df["urgency_status"].value_counts().to_string())
df.loc[failed, ["ticket_id", "urgency_status", "urgency_error"]].head()
"""),
    md("""
`%batch retry JOB DF` sends only the rows that errored, expired or were invalid, as a new
job, and writes their answers back into the same rows. The rows that succeeded are not
paid for again. Overloads pass: restart the simulator without faults, and put automatic
retries back on.
"""),
    code("""
%batch simulator start --processing-time 2
%config BatchMagic.max_attempts = 3
"""),
    code("""
%batch retry last df --wait
"""),
    code("""
print(df["urgency_status"].value_counts().to_string())
gold = df["urgent"].map({True: "urgent", False: "routine"})
ok = df["urgency_status"] == "succeeded"
print(f"urgency matches the gold column in {(df.loc[ok, 'urgency'].astype(str) == gold[ok]).mean():.0%} of rows (SIMULATED answers)")
"""),
    md("""
## 4. Cancel

A slow simulator this time (each batch takes 10 minutes), and no `--wait`: the panel's
Cancel button, or `%batch cancel JOB`, asks the API to stop. Requests that already
finished are kept and merged; the others are marked `canceled`.
"""),
    code("""
%batch simulator start --processing-time 600
"""),
    code("""
%%batch df --out summary --max-tokens 60
Summarise this ticket in one sentence: {{ text }}
"""),
    md("""
Let it reach the server, so the cancel goes to the API (rows of a job canceled before its
batch exists are simply marked `canceled`), then cancel it:
"""),
    code("""
summary_job = %batch job
while summary_job.status.batches_submitted < 1:  # its batch exists on the server
    await asyncio.sleep(0.2)
"""),
    code("""
%batch cancel last
"""),
    code("""
%batch wait
print(df["summary_status"].value_counts().to_string())
"""),
    md("""
## Everything the journal holds

`%batch list` reads the journal (also from a new kernel); `simulated` marks jobs answered
by the simulator.
"""),
    code("""
%batch list
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 04 batch vs realtime
# --------------------------------------------------------------------------------------
BATCH_VS_REALTIME: list[Cell] = [
    md(f"""
# Batch or realtime? Cost, latency, and the pilot-then-batch workflow

The Message Batches API costs **half** the realtime price for the same tokens. The price
of the discount is time: a batch returns when it has ended, usually within an hour and
at most 24 hours later, instead of seconds per request. This notebook puts the two side by
side for the ticket classifier, then shows the workflow that gets the best of both: try a
few rows in realtime, estimate, then send the batch.

{SIMULATED_NOTE}
"""),
    code("""
%load_ext batch_magic
%batch simulator start
"""),
    code(f"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import batch_magic
from batch_magic import load_tickets
from batch_magic.pricing import estimate_cost, load_prices

df = load_tickets()
TEAMS = "{TEAMS}"
TEMPLATE = \"\"\"{TRIAGE}\"\"\"
"""),
    md("""
## Cost: Haiku 5.5 in a batch, Haiku 5.5 in realtime, Haiku 4.5

`batch_magic.dry_run` plans the job without sending anything and estimates its tokens and
cost at both prices. `claude-haiku-5-5` is the default model; `claude-haiku-4-5` is the
model it succeeds. Here the dry run has no client (the simulator of this notebook serves
the magic only), so what each model accepts comes from the snapshot bundled with the
package, and the dry run says so in its notes.
"""),
    code("""
plan = batch_magic.dry_run(df, TEMPLATE, labels=TEAMS)
plan
"""),
    md("""
**Effort is the knob.** Haiku 5.5 thinks before answering, at an effort of `low`,
`medium` (its default), `high`, `xhigh` or `max`. For a one-word label batch_magic turns
thinking off where the model allows it (up to `high`), so those levels cost the same;
at `xhigh` and `max` thinking stays on, `max_tokens` grows to leave it room, and the
upper bound grows with it (thinking is billed as output). Haiku 4.5 has no effort
setting. Every figure below comes from the plans and from `batch_magic.pricing`.
"""),
    code("""
def plan_row(model, effort=None):
    p = batch_magic.dry_run(df, TEMPLATE, labels=TEAMS, model=model, effort=effort)
    e = p.estimate
    return {
        "model": model, "effort": effort or "-",
        "thinking": "turned off" if p.plan.options.thinking else "on" if p.model.thinks_unasked else "off by default",
        "max_tokens": p.plan.options.max_tokens,
        "batch $": e.batch_cost, "batch $ at most": e.batch_cost_upper, "realtime $": e.realtime_cost,
    }

by_effort = pd.DataFrame(
    [plan_row("claude-haiku-5-5", level) for level in ["low", "medium", "high", "xhigh", "max"]]
    + [plan_row("claude-haiku-4-5")]
)
by_effort.round(4)
"""),
    md("""
Scale that up to bigger data sets. Costs grow linearly with the rows: per row, the
tokens of the plans above, priced by `pricing.estimate_cost` for each model at its
default effort.
"""),
    code("""
rows = np.array([300, 3_000, 30_000, 300_000, 1_000_000])

def per_row(model):
    p = batch_magic.dry_run(df, TEMPLATE, labels=TEAMS, model=model)
    e = p.estimate
    return e.input_tokens / e.n_requests, e.expected_output_tokens / e.n_requests, p.plan.options.max_tokens

table = []
for model in ["claude-haiku-5-5", "claude-haiku-4-5"]:
    in_per_row, out_per_row, max_tokens = per_row(model)
    for n in rows:
        est = estimate_cost(
            model, input_tokens=int(in_per_row * n), n_requests=int(n),
            max_tokens=max_tokens, expected_output_per_request=int(out_per_row),
        )
        table.append({"model": model, "rows": n, "batch $": est.batch_cost, "realtime $": est.realtime_cost})
costs = pd.DataFrame(table)
new, old = (costs[costs["model"] == m].set_index("rows") for m in ("claude-haiku-5-5", "claude-haiku-4-5"))
compare = pd.DataFrame({
    "Haiku 5.5 batch $": new["batch $"],
    "Haiku 5.5 realtime $": new["realtime $"],
    "Haiku 4.5 batch $": old["batch $"],
})
compare.round(2)
"""),
    md("""
## Latency: when all the answers are in

Realtime requests each take a second or two, and rate limits cap how many run at once,
so the time to finish grows with the rows. A batch's time barely depends on its size
(up to 100,000 requests per batch): most end within an hour, and a request not
processed within 24 hours expires (batch_magic sends expired requests again). The numbers
below are **assumptions**, not measurements: change them to your account's limits.
"""),
    code("""
REALTIME_SECONDS_PER_REQUEST = 1.5   # one short classification, end to end
REALTIME_CONCURRENCY = 8             # requests in flight, as your rate limits allow
BATCH_TYPICAL_HOURS = 1.0            # most batches end within the hour
BATCH_MAX_HOURS = 24.0               # after this, unprocessed requests expire

realtime_hours = rows * REALTIME_SECONDS_PER_REQUEST / REALTIME_CONCURRENCY / 3600
side_by_side = pd.DataFrame({
    "rows": rows,
    "realtime: hours": realtime_hours.round(2),
    "batch: typical hours": BATCH_TYPICAL_HOURS,
    "Haiku 5.5 realtime $": compare["Haiku 5.5 realtime $"].to_numpy().round(2),
    "Haiku 5.5 batch $": compare["Haiku 5.5 batch $"].to_numpy().round(2),
})
side_by_side
"""),
    code("""
fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(11, 4))

for column, style in [("Haiku 5.5 realtime $", "o-"), ("Haiku 5.5 batch $", "o-"), ("Haiku 4.5 batch $", "s--")]:
    ax_cost.plot(compare.index, compare[column], style, label=column.removesuffix(" $"))
ax_cost.set(xscale="log", yscale="log", xlabel="rows", ylabel="US dollars",
            title="Cost (from batch_magic.pricing)")
ax_cost.legend()

ax_time.plot(rows, realtime_hours, "o-", label="realtime (assumed rate)")
ax_time.axhline(BATCH_TYPICAL_HOURS, color="C1", label="batch, typical")
ax_time.axhspan(BATCH_TYPICAL_HOURS, BATCH_MAX_HOURS, color="C1", alpha=0.15, label="batch, up to 24 h")
ax_time.set(xscale="log", yscale="log", xlabel="rows", ylabel="hours until every answer is in",
            title="Latency (assumptions)")
ax_time.legend()
fig.tight_layout()
plt.show()
"""),
    code("""
crossover = rows[realtime_hours > BATCH_TYPICAL_HOURS]
if crossover.size:
    print(f"From about {crossover[0]:,} rows a typical batch finishes before realtime would, at half the cost.")
print("Below that, realtime is faster; batch is still half the price.")
"""),
    md("""
**Rule of thumb.** Use realtime while you iterate on a prompt (seconds per answer, a
handful of rows) and when someone is waiting for the answer. Use a batch for the whole
data set: half the price, no rate-limit juggling, and with batch_magic the kernel stays
free while it runs. Long shared system prompts get cheaper still with prompt caching.

## The workflow: pilot, dry run, batch

**1. Pilot.** `--pilot 5` sends five sampled rows through the realtime API, in seconds,
and shows prompts, answers and their cost. Nothing is merged and nothing goes into the
journal. (Here the realtime endpoint is the simulator's too: the answers are SIMULATED.)
"""),
    code(f"""
%%batch df --out team --labels {TEAMS} --max-tokens 20 --pilot 5
{TRIAGE}
"""),
    md("""
**2. Dry run.** `--dry-run` plans the whole job and shows rows, requests, skipped and
duplicate rows, batches, the token and cost estimate (expected, and an upper bound that
assumes every answer uses `max_tokens`) and the first prompts. Nothing is sent.
"""),
    code(f"""
%%batch df --out team --labels {TEAMS} --max-tokens 20 --dry-run
{TRIAGE}
"""),
    md("""
**3. The batch**, with a budget: `--max-cost` refuses to submit a job whose upper bound
is above it. A budget that is too small stops the cell before anything is sent (here
for longer answers, `--max-tokens 200`, which raise the upper bound). A job that
already exists in the journal is re-attached instead, whatever the budget: it costs
nothing more.
"""),
    code(f"""
%%batch df --out team --labels {TEAMS} --max-tokens 200 --max-cost 0.001
{TRIAGE}
""", "raises-exception"),
    code(f"""
%%batch df --out team --labels {TEAMS} --max-tokens 20 --max-cost 0.50 --wait
{TRIAGE}
"""),
    code("""
job = %batch job
s = job.status
answered = df["team_status"] == "succeeded"
accuracy = (df.loc[answered, "team"].astype(str) == df.loc[answered, "category"].astype(str)).mean()
print(f"estimated ${s.estimated_cost:.4f}, at most ${s.estimated_cost_upper:.4f}; actual ${s.actual_cost:.4f} (SIMULATED token counts)")
print(f"the same answers through realtime: ${s.actual_cost / load_prices().batch_discount:.4f}")
print(f"Accuracy against the gold 'category' column: {accuracy:.1%} (SIMULATED answers)")
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 05 images and documents
# --------------------------------------------------------------------------------------
MEDIA: list[Cell] = [
    md(f"""
# Images and documents: product photos and invoice PDFs

Data scientists classify product photos and scanned receipts, and pull fields out of
invoices, as often as they classify text. In a template, `{{{{ image(photo) }}}}` and
`{{{{ pdf(invoice) }}}}` put a row's file where the prompt needs it. A column may hold
local paths, `pathlib.Path`s, the files' bytes or PIL images.

Each distinct file is uploaded **once** through the Files API and every request names it
by its `file_id`, so a batch of thousands of photos stays a few hundred bytes a request,
and a re-run, a retry or another job over the same files uploads nothing.

{SIMULATED_NOTE} The simulator's fake model reads the files: it names an image's dominant
colour and reads a PDF's text.
"""),
    code("""
%load_ext batch_magic
%batch simulator start
"""),
    md("""
## 1. A dozen product photos

Twelve synthetic photos shipped with the package (drawn by `scripts/make_media.py`), each
with a gold `colour` label.
"""),
    code("""
import pandas as pd
from IPython.display import Image, display

from batch_magic import load_invoices, load_products
from batch_magic.datasets import COLOURS

products = load_products()
display(*(Image(filename=p) for p in products["photo"][:4]))
products[["product_id", "name", "colour"]]
"""),
    md("""
`%%batch products.photo` with a plain-text body sends each row's photo first, then the
text. A dry run first: it reads every file (a missing or unsupported one is an error now,
before anything is uploaded), and its token estimate counts each image from its pixel
size, so it says it is approximate.
"""),
    code("""
%%batch products.photo --out guess --labels COLOURS --dry-run
What is the main colour of this product? Answer with one colour.
"""),
    code("""
%%batch products.photo --out guess --labels COLOURS --wait
What is the main colour of this product? Answer with one colour.
"""),
    code("""
right = (products["guess"].astype(str) == products["colour"].astype(str)).mean()
print("SIMULATED answers (built-in simulator, not Claude):")
print(f"colour matches the gold label for {right:.0%} of the photos (SIMULATED answers)")
products[["name", "colour", "guess", "guess_status"]]
"""),
    md("""
`%batch files` lists a job's uploads: the `file_id` each request names, the file's name as
you gave it, and its size.
"""),
    code("""
first_files = %batch files
first_files[["file_id", "name", "size"]]
"""),
    md("""
Another question over the same photos is a new job, but not new uploads: the journal
remembers every upload by the file's hash (and the server it went to), so the requests
name the same `file_id`s.
"""),
    code("""
%%batch products --out kind --labels clothing,bag,kitchen,electronics,other --wait
{{ image(photo) }}
Which kind of product is this {{ name }}?
"""),
    code("""
second_files = %batch files
print("same uploads as the first job:", set(second_files["file_id"]) == set(first_files["file_id"]))
"""),
    md("""
## 2. Fields from invoice PDFs

Five synthetic invoices (one or two pages each). `{{ pdf(invoice) }}` sends each as a
document block; `--schema` asks for typed fields.
"""),
    code("""
invoices = load_invoices()
invoice_schema = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "date": {"type": "string", "description": "the invoice date, YYYY-MM-DD"},
        "vendor": {"type": "string"},
        "total": {"type": "number", "description": "the amount due"},
    },
    "required": ["invoice_number", "date", "vendor", "total"],
}
invoices[["invoice_number", "vendor", "total", "pages"]]
"""),
    code("""
%%batch invoices --out inv --schema invoice_schema --wait
{{ pdf(invoice) }}
Extract the invoice's number, date, vendor and total.
"""),
    code("""
fields = ["invoice_number", "date", "vendor", "total"]
match = pd.DataFrame({f: invoices[f"inv_{f}"].astype(str) == invoices[f].astype(str) for f in fields})
match["total"] = invoices["inv_total"].astype(float) == invoices["total"]
print("SIMULATED answers (built-in simulator, not Claude):")
print(f"{match.to_numpy().mean():.0%} of the fields match the gold values (SIMULATED answers)")
invoices[[f"inv_{f}" for f in fields] + ["inv_status"]]
"""),
    md("""
The estimate counted each PDF as an image per page plus its text (the documented rule);
the simulator reports the tokens it billed, so the two can be compared. The estimate is
approximate by design.
"""),
    code("""
job = %batch job
est = job.record.estimate
print(f"input tokens: estimated ~{est.input_tokens:,} (of which ~{est.media_tokens:,} for the PDFs), "
      f"billed {job.record.usage['input_tokens']:,} (SIMULATED token counts)")
"""),
    md("""
## 3. Housekeeping

Uploads stay on the server until you delete them: nothing is deleted automatically while
a job could still be retried. Once a job has ended, `%batch files JOB --delete` (or
`batch_magic.delete_job_files(job_id)`) removes its uploads; one that another unfinished
job still uses is kept. In Python the same jobs are
`batch_magic.submit(df, "{{ image(photo) }} ...", labels=[...])`.
"""),
    code("""
%batch files last --delete
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 07 Polars
# --------------------------------------------------------------------------------------
POLARS: list[Cell] = [
    md(f"""
# Polars frames in and out

`%%batch` takes a Polars frame as it takes a pandas one. Only the columns the template
reads are read; the answers come back as a **new** Polars frame (a Polars frame cannot
change), typed: labels and statuses as `pl.Enum`, schema fields as `Int64`, `Float64`,
`Boolean`, `String`, `Enum`, `List` and `Struct`, token counts as integers. The cell
rebinds your variable to the new frame and says so.

{SIMULATED_NOTE}
"""),
    code("""
%load_ext batch_magic
%batch simulator start
"""),
    md("""
The bundled tickets, saved as a Parquet file and loaded with Polars, as your own data
would be.
"""),
    code("""
import polars as pl

from batch_magic import load_tickets

load_tickets().to_parquet("tickets.parquet")
tickets = pl.read_parquet("tickets.parquet")
tickets.select("ticket_id", "text", "category").head()
"""),
    md("""
## Labels, and a key

A Polars frame has no index: a job's rows are its rows at submission, by position.
`--key ticket_id` names the column that identifies a row, so the answers can find their
rows again in a filtered, reordered or freshly loaded frame. The key is kept in the
journal (as Arrow data); it must be unique and never missing, which is checked before
anything is sent.
"""),
    code(f"""
%%batch tickets --out team --labels {TEAMS} --key ticket_id --wait
{TRIAGE}
"""),
    code("""
print({name: str(dtype) for name, dtype in tickets.schema.items() if name.startswith("team")})
tickets.group_by("team_status").len().sort("team_status")
"""),
    code("""
answered = tickets.filter(pl.col("team_status") == "succeeded")
right = answered.select((pl.col("team").cast(pl.String) == pl.col("category").cast(pl.String)).mean()).item()
print("SIMULATED answers (built-in simulator, not Claude):")
print(f"team matches the gold 'category' for {right:.0%} of {answered.height} answered tickets (SIMULATED answers)")
"""),
    md("""
## After a restart: attach by key

Play a kernel restart: forget the frame and load the file again, this time filtered and
in another order. `%batch attach` finds each answer's row by its `ticket_id`; nothing is
sent again. (Without a key, rows are matched by position, so a frame of another height or
order is refused, the results kept in the journal, instead of merged into the wrong rows.)
"""),
    code("""
del tickets
fresh = (
    pl.read_parquet("tickets.parquet")
    .filter(pl.col("text").is_not_null())
    .sort("ticket_id", descending=True)
)
fresh.select("ticket_id", "text").head(3)
"""),
    code("""
%batch attach last fresh --wait
"""),
    code("""
print("rows:", fresh.height, "| first:", fresh["ticket_id"][0], "| team is", fresh.schema["team"])
fresh.select("ticket_id", "team", "team_status").head()
"""),
    md("""
## A schema: typed fields

Each field of the schema becomes a column of its Polars type; a list of strings is a
`List(String)`, an object a `Struct`.
"""),
    code("""
ticket_schema = {
    "type": "object",
    "properties": {
        "urgent": {"type": "boolean"},
        "items": {"type": "integer", "minimum": 0, "description": "how many items are concerned"},
        "mood": {"type": "string", "enum": ["calm", "annoyed", "angry"]},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"first_name": {"type": "string"}},
                     "required": ["first_name"]},
    },
    "required": ["urgent", "items", "mood", "keywords", "customer"],
}
"""),
    code("""
%%batch fresh --out info --schema ticket_schema --key ticket_id --wait
Read this support ticket and fill in the fields: {{ text }}
"""),
    code("""
print({name: str(dtype) for name, dtype in fresh.schema.items() if name.startswith("info_")})
fresh.select("ticket_id", "info_urgent", "info_items", "info_mood", "info_keywords", "info_customer").head()
"""),
    md("""
## A retry keeps the types

Restart the simulator so that a fifth of the requests are overloaded, and keep one
attempt per request, so that some rows end as `errored`:
"""),
    code("""
%batch simulator stop
%batch simulator start --error-rate overloaded_error=0.2
%config BatchMagic.max_attempts = 1
"""),
    code("""
%%batch fresh --out feeling --labels positive,negative,neutral --key ticket_id --wait
How does the customer feel? {{ text }}
"""),
    code("""
print(fresh.group_by("feeling_status").len().sort("feeling_status"))
"""),
    md("""
`%batch retry` sends only the errored rows again and gives back the whole frame with
their answers: `fresh` is rebound once more, its types unchanged.
"""),
    code("""
%batch simulator stop
%batch simulator start
%config BatchMagic.max_attempts = 3
"""),
    code("""
%batch retry last fresh --wait
"""),
    code("""
print(fresh.group_by("feeling_status").len().sort("feeling_status"))
print("feeling is", fresh.schema["feeling"], "| feeling_status is an", type(fresh.schema["feeling_status"]).__name__)
"""),
    md("""
In Python the same is `job = batch_magic.submit(frame, template, labels=[...], key="ticket_id")`;
`job.wait()` (or `job.result()`) gives the new frame, `batch_magic.attach(job_id, fresh)`
and `batch_magic.retry_failed(job_id, frame)` likewise. Polars is an optional dependency
(`pip install batch-magic[polars]`); a pandas user never imports it.
"""),
    code("""
%batch simulator stop
"""),
]


# --------------------------------------------------------------------------------------
# 06 prompt iteration: sample, evaluate, compare, then scale
# --------------------------------------------------------------------------------------
def prompt_iteration() -> list[Cell]:
    """Notebook 06: the loop on the bundled tickets, each prompt paid for once."""
    first = "Which team should handle this support ticket? {{ text }}"
    better = """\
Route this support ticket to one team:
- billing: charges, invoices, refunds of money, payment methods
- shipping: deliveries, couriers, tracking, late or lost parcels
- technical: a product that fails, breaks, will not connect or update
- account: logins, passwords, profiles, subscriptions
- returns: sending a product back, exchanges, return labels

Ticket: {{ text }}"""
    sample = "--sample 60 --stratify category --seed 1"
    return [
        md(f"""
# Prompt iteration: sample, evaluate, compare, then scale

A classification prompt is rarely right the first time. The loop is:

1. try a prompt on a **sample**;
2. **evaluate** it against the gold labels you have;
3. write a better prompt and **compare** the two on the same rows;
4. run the winner on **every row**, paying only for the rows the sample did not answer.

Every answer a job gets is kept in the journal, keyed by the exact request (model,
parameters, prompt): a later job takes it from there instead of sending it again. So
the sample is not wasted money: the full run reuses it.

{SIMULATED_NOTE}

> **The figures below are simulated.** The simulator picks a label by word overlap with
> the prompt, not by understanding the ticket: its accuracy, F1, kappa and the comparison
> say nothing about which prompt Claude would do better with. The notebook shows how to
> read them; run it with a real key to measure your prompts.
"""),
        code("""
%load_ext batch_magic
%batch simulator start
"""),
        md("""
The bundled tickets carry gold labels: `category` is the team each ticket belongs to.
"""),
        code("""
from batch_magic import load_tickets

df = load_tickets()
print(f"{len(df)} tickets; gold teams:")
print(df["category"].value_counts().to_string())
"""),
        md("""
## 1. A sample

`--sample 60` sends 60 rows; `--stratify category` gives each team its share of them
(a rare team is not left out by chance), and `--seed 1` draws the same rows every time,
so a second prompt can be tried on exactly these. The other rows get the status
`not_sent` (not `skipped`, which means an empty input). A `--dry-run` on the same line
would show the rows sent and left out, and what all 300 rows would cost at the sample's
estimate per row.
"""),
        code(f"""
%%batch df --out team --labels {TEAMS} {sample} --wait
{first}
"""),
        code("""
print(df["team_status"].value_counts().to_string())
"""),
        md("""
## 2. Evaluate

`%batch eval OUT --gold COL` measures the answers against the gold column: every row is
counted (answered, invalid, errored, not sent...), accuracy with its 95% interval over
the rows answered and over all rows, per-team precision, recall and F1, Cohen's kappa,
the confusion matrix, the cost per correct answer, and the rows it got wrong. In Python:
`batch_magic.evaluate(df, "team", gold="category")`.
"""),
        code("""
%batch eval team --gold category
"""),
        md("""
## 3. A better prompt, on the same rows

The second prompt says what each team does. Same sample options, another `--out`:
"""),
        code(f"""
%%batch df --out team_v2 --labels {TEAMS} {sample} --wait
{better}
"""),
        md("""
`%batch compare A B --gold COL` sets the two side by side on the rows both answered:
each one's accuracy with its interval, the difference with McNemar's exact test (is it
more than chance on these rows?), how often they agree, and the rows where they differ.
In Python: `batch_magic.compare(df, "team", "team_v2", gold="category")`.
"""),
        code("""
comparison = %batch compare team team_v2 --gold category
comparison
"""),
        code("""
m = comparison.metrics
print("SIMULATED figures (built-in simulator, not Claude):")
print(f"first prompt {m.accuracy_a.value:.0%}, second {m.accuracy_b.value:.0%} of {m.both_answered} rows; "
      f"McNemar p = {m.p_value:.2f}")
"""),
        md("""
With Claude, this is where you pick the winner: the better accuracy, if the p-value says
the difference is more than chance (with 60 rows, only a large one is), and the cost per
correct answer. The simulator's figures decide nothing, so here we run the second prompt,
the one written to be better.

## 4. The winner on every row

First a dry run of the full job: it says how many requests the journal answered already
(the sample's) and estimates only the rest.
"""),
        code(f"""
%%batch df --out team_v2 --labels {TEAMS} --dry-run
{better}
"""),
        md("""
The same cell without `--sample` runs it. The sample's answers are taken from the
journal: only the new rows are sent and paid for.
"""),
        code(f"""
%%batch df --out team_v2 --labels {TEAMS} --wait
{better}
"""),
        code("""
job = %batch job
print(job.status)
sent = job.status.n_requests - job.status.n_reused
print(f"reused from the sample: {job.status.n_reused} answers; sent: {sent} new requests")
"""),
        code("""
print(df["team_v2_status"].value_counts().to_string())
%batch eval team_v2 --gold category
"""),
        md("""
Re-running any cell above re-attaches to its job in the journal: nothing is paid twice.
`--fresh` on a `%%batch` line sends every request again (new samples of a
non-deterministic answer); `%batch help eval` and `%batch help compare` list the options.
"""),
        code("""
%batch simulator stop
"""),
    ]


NOTEBOOK_CELLS: dict[str, list[Cell]] = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_structured_extraction.ipynb": STRUCTURED,
    "03_reliability.ipynb": RELIABILITY,
    "04_batch_vs_realtime.ipynb": BATCH_VS_REALTIME,
    "05_images_and_documents.ipynb": MEDIA,
    "06_prompt_iteration.ipynb": prompt_iteration(),
    "07_polars.ipynb": POLARS,
}


def build(name: str, cells: list[Cell]) -> Any:
    """A notebook without outputs, with stable cell ids (so regenerating changes nothing)."""
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    stem = name.split(".")[0].replace("_", "-")
    for i, cell in enumerate(cells):
        kind, source = cell[0], cell[1]
        if kind == "markdown":
            nb_cell = new_markdown_cell(source)
        else:
            nb_cell = new_code_cell(source)
            tags = cell[2] if len(cell) > 2 else []
            if tags:
                nb_cell.metadata["tags"] = list(tags)
        nb_cell.id = f"{stem}-{i:02d}"
        nb.cells.append(nb_cell)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name, NOTEBOOK_CELLS[name])) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from this script")
    p.add_argument("--out", type=Path, default=NOTEBOOKS, help="folder to write to")
    args = p.parse_args(argv)
    stale = []
    for name in NOTEBOOK_CELLS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/make_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
