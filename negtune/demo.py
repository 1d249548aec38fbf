"""``negtune demo``: the whole pipeline on the embedded default, from nothing, on a CPU, with no hub.

tiny base model -> synthetic verifiable tasks -> rollout-and-verify -> RFT, NFT (offline) and NGRPO (online),
LoRA -> math eval; tiny "TOFU fine-tuned" model + a retain model -> GA and NPO unlearning (LoRA) -> TOFU eval;
then one table (method, what it optimises, metric before -> after, time) and ``OUT/report.md`` with plots.
It ends with one claim measured with seeds and a 95% interval: on a trap task (the arithmetic model taught a
misconception), does NFT, which learns from the wrong rationales too, beat RFT, which keeps only the right ones?

Every stage writes into ``OUT/<stage>`` and is skipped when its output exists, so an interrupted demo resumes.
``--quick`` shrinks every stage (CI runs it); the full demo fits in about ten minutes on two CPU cores.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from negtune import methods
from negtune.utils import threads


@dataclass
class DemoSize:
    warm_steps: int  # warm start of the arithmetic model
    facts_steps: int  # fine-tuning of the TOFU-analogue models
    train_prompts: int
    eval_prompts: int
    n: int  # rollout samples per prompt
    offline_steps: int  # RFT / NFT steps
    online_steps: int  # NGRPO steps
    unlearn_steps: int
    # the closing comparison, NFT vs RFT on the trap task (benchmarks/negatives_trap.py at a smaller size)
    comparison_seeds: int
    trap_steps: int  # fine-tuning that teaches the arithmetic model the misconception
    trap_prompts: int  # rollout prompts per seed (8 samples each)
    trap_train_steps: int  # NFT / RFT steps of 16 rows (full fine-tuning)
    trap_eval: int  # held-out trap problems (8 samples each)


FULL = DemoSize(warm_steps=600, facts_steps=500, train_prompts=96, eval_prompts=100, n=8, offline_steps=80,
                online_steps=40, unlearn_steps=18, comparison_seeds=5, trap_steps=300, trap_prompts=128,
                trap_train_steps=64, trap_eval=100)
QUICK = DemoSize(warm_steps=120, facts_steps=200, train_prompts=24, eval_prompts=24, n=4, offline_steps=6,
                 online_steps=3, unlearn_steps=8, comparison_seeds=2, trap_steps=10, trap_prompts=8,
                 trap_train_steps=2, trap_eval=8)
TRAP_LR = 1e-4  # what benchmarks/negatives_trap.py's grid (1e-5 .. 1e-3, tuned on its own seed) chose for both

LORA = ["--use_peft", "true", "--lora_r", "16", "--lora_alpha", "32",
        "--lora_target_modules", "q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


@dataclass
class DemoConfig:
    out: str = "demo_out"
    quick: bool = False
    seed: int = 0


class Demo:
    def __init__(self, cfg: DemoConfig, console: Console | None = None):
        self.cfg, self.size = cfg, (QUICK if cfg.quick else FULL)
        self.out = Path(cfg.out)
        self.console = console or Console()
        self.rows: list[dict[str, Any]] = []
        self.stage_seconds: dict[str, float] = {}
        self.comparison: dict[str, Any] | None = None

    # -- helpers ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str, done: bool = False):
        t0 = time.monotonic()
        self.console.rule(f"[bold]{name}" + (" (done: reused)" if done else ""))
        threads.adapt()  # the machine may have got busier (or quieter) since the last stage
        yield
        self.stage_seconds[name] = round(time.monotonic() - t0, 1)
        self.console.print(f"[dim]{name}: {self.stage_seconds[name]} s[/dim]")

    def train(self, method: str, model: str, output: Path, args: list[str], lora: bool = True) -> float:
        """``negtune train`` in-process (the same entry point as the CLI); returns the seconds it took (when it
        was reused, the seconds of the run that made it)."""
        from negtune.train import main as train_main

        timing = output / "demo_train_seconds.json"  # written once the model is saved
        if timing.exists():
            return json.loads(timing.read_text())["seconds"]
        t0 = time.monotonic()
        argv = [method, "--model_name_or_path", model, "--output_dir", str(output), "--use_cpu", "true",
                "--report_to", "none", "--save_strategy", "no", "--seed", str(self.cfg.seed),
                *(LORA if lora else []), *args]
        train_main(argv)
        seconds = round(time.monotonic() - t0, 1)
        timing.write_text(json.dumps({"seconds": seconds}))
        return seconds

    def show_dynamics(self, output: Path) -> None:
        """What makes an online run off-policy visible: the ratio terms act (0 clipped tokens on-policy)."""
        state = output / "trainer_state.json"
        if not state.exists():
            return
        log = json.loads(state.read_text())["log_history"]
        means = {k: statistics.mean(h[k] for h in log if k in h)
                 for k in ("clip_ratio/low_mean", "clip_ratio/high_mean", "nft/ratio_mean", "sampling/rounds")
                 if any(k in h for h in log)}
        if means:
            self.console.print("  training dynamics (means over the logged steps): "
                               + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))

    # -- stages ----------------------------------------------------------------------------------------------
    def build_math(self) -> tuple[str, str, str]:
        from negtune.data.io import write_jsonl
        from negtune.data.tasks import make_arith
        from negtune.models.tiny import WarmStartConfig, create_tiny_model

        base, train_file, eval_file = self.out / "tiny-arith", self.out / "arith-train.jsonl", self.out / "arith-eval.jsonl"
        with self.stage("1. tiny arithmetic model + synthetic verifiable tasks", (base / "config.json").exists()):
            if not (base / "config.json").exists():
                warm = WarmStartConfig(seed=self.cfg.seed, max_steps=self.size.warm_steps, target_accuracy=0.3)
                info = create_tiny_model(base, task="arith", seed=self.cfg.seed, warm=warm,
                                         progress=lambda m: self.console.print("  " + m))
                self.console.print(f"  {info['parameters']:,} parameters; warm start greedy accuracy "
                                   f"{info['greedy_accuracy']:.1%}")
            write_jsonl(train_file, make_arith(self.size.train_prompts, seed=self.cfg.seed + 1, difficulty=2))
            write_jsonl(eval_file, make_arith(self.size.eval_prompts, seed=self.cfg.seed + 1000, difficulty=2))
        return str(base), str(train_file), str(eval_file)

    def rollout(self, base: str, train_file: str) -> str:
        from negtune.rollout.stage import RolloutConfig, print_summary, rollout_and_verify

        out = self.out / "rollout"
        with self.stage("2. rollout and verify (labeled positives / negatives)", (out / "stats.json").exists()):
            cfg = RolloutConfig(model=base, dataset=train_file, out=str(out), n=self.size.n, temperature=1.0,
                                max_new_tokens=96, seed=self.cfg.seed, engine="hf", verify_workers=0)
            _, stats = rollout_and_verify(cfg)
            print_summary(stats, str(out))
        return str(out)

    def math_eval(self, model: str, name: str, eval_file: str, n: int = 4, progress: bool = True) -> dict:
        from negtune.evaluation.math import MathEvalConfig, evaluate_math

        out = self.out / "eval" / name
        if (out / "results.json").exists():
            return json.loads((out / "results.json").read_text())
        cfg = MathEvalConfig(model=model, out=str(out), benchmarks=[eval_file], n=n, temperature=0.6, top_p=0.95,
                             max_new_tokens=96, seed=self.cfg.seed, engine="hf", verify_workers=0)
        return evaluate_math(cfg, progress=progress)

    def math_methods(self, base: str, rollout: str, train_file: str, eval_file: str) -> None:
        with self.stage("3. evaluate the base model (held-out arithmetic, avg@4)"):
            before = self.math_eval(base, "base", eval_file)["average"]["avg@4"]
        s = self.size
        runs = {
            "RFT": ("rft_offline", ["--dataset", rollout, "--max_steps", str(s.offline_steps),
                                    "--per_device_train_batch_size", "8", "--learning_rate", "1e-3"]),
            "NFT": ("nft_offline", ["--dataset", rollout, "--max_steps", str(s.offline_steps),
                                    "--per_device_train_batch_size", "8", "--learning_rate", "1e-3"]),
            "NGRPO": ("ngrpo", ["--dataset", train_file, "--max_steps", str(s.online_steps),
                                "--per_device_train_batch_size", "16", "--num_generations", "4",
                                "--max_completion_length", "96", "--learning_rate", "1e-3", "--bf16", "false",
                                "--gradient_checkpointing", "false",
                                "--logging_steps", "1" if self.cfg.quick else "5"]),
        }
        for i, (name, (method, args)) in enumerate(runs.items(), start=4):
            output = self.out / "models" / name.lower()
            with self.stage(f"{i}. train {name} (LoRA) and evaluate"):
                seconds = self.train(method, base, output, args)
                self.show_dynamics(output)
                after = self.math_eval(str(output), name.lower(), eval_file)["average"]["avg@4"]
            self.rows.append({"method": name, "optimises": methods.get(method).objective,
                              "metrics": [("held-out avg@4", before, after)], "train_seconds": seconds})

    def unlearning(self) -> None:
        from negtune.data.tasks.facts import write_tofu_synthetic
        from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu
        from negtune.models.tiny import create_tiny_model

        full, retain = self.out / "tiny-facts", self.out / "tiny-facts-retain"
        tofu = self.out / "tofu-synth"
        done = (full / "config.json").exists() and (retain / "config.json").exists()
        with self.stage("7. TOFU analogue: fine-tuned model + retain model (never saw forget10)", done):
            write_tofu_synthetic(tofu, seed=self.cfg.seed)
            for path, without in ((full, None), (retain, "forget10")):
                if not (path / "config.json").exists():
                    create_tiny_model(path, task="facts", seed=self.cfg.seed, facts_steps=self.size.facts_steps,
                                      facts_without=without,
                                      progress=lambda m, name=path.name: self.console.print(f"  {name}: {m}"))

        def tofu_eval(model: Path, name: str, retain_log: str | None, progress: bool = True) -> dict:
            out = self.out / "eval" / name
            if not (out / "results.json").exists():
                evaluate_tofu(TofuEvalConfig(model=str(model), out=str(out), tofu_root=str(tofu),
                                             retain_log=retain_log), progress=progress)
            return json.loads((out / "results.json").read_text())["metrics"]

        with self.stage("8. TOFU eval of the retain and fine-tuned models"):
            tofu_eval(retain, "tofu-retain", None)
            log = str(self.out / "eval" / "tofu-retain" / "eval_log.json")
            before = tofu_eval(full, "tofu-full", log)
        common = ["--tofu_root", str(tofu), "--forget", "forget10", "--max_steps", str(self.size.unlearn_steps),
                  "--per_device_train_batch_size", "4", "--ref_cache_dir", str(self.out / "cache")]
        runs = {"GA": ("ga", ["--learning_rate", "2e-3"]), "NPO": ("npo", ["--learning_rate", "2e-3"])}
        for i, (name, (method, args)) in enumerate(runs.items(), start=9):
            output = self.out / "models" / name.lower()
            with self.stage(f"{i}. unlearn forget10 with {name} (LoRA) and evaluate"):
                seconds = self.train(method, str(full), output, [*common, *args])
                after = tofu_eval(output, f"tofu-{name.lower()}", log)
            metrics = [(label, before[key], after[key]) for label, key in (
                ("forget prob", "forget_prob"), ("forget quality", "forget_quality"), ("model utility", "model_utility"))]
            self.rows.append({"method": name, "optimises": methods.get(method).objective, "metrics": metrics,
                              "train_seconds": seconds})

    def compare_trap(self, base: str) -> None:
        """The closing claim, with seeds and an interval: do the wrong answers help? NFT vs RFT on the trap task.

        The arithmetic model is taught a misconception ("triples" worked out as doubling, 80% of the time);
        per seed it samples 8 rationales for each of ``trap_prompts`` trap problems, mostly wrong, many of them
        the trap answer. RFT trains on the right rationales alone; NFT on the same rollout also learns from the
        wrong ones (its implicit negative policy). Both: full fine-tuning, the same steps, batch and learning
        rate (the one ``benchmarks/negatives_trap.py``'s grid chose for both). Paired by seed: NFT - RFT in
        avg@8 on held-out trap problems, with its 95% Student-t interval, and how often each ends in the trap."""
        from negtune.data.tasks import eval_answer_shares, write_trap_problems
        from negtune.evaluation.stats import paired_difference
        from negtune.models.tiny import create_trap_model
        from negtune.rollout.stage import RolloutConfig, rollout_and_verify

        s, root = self.size, self.out / "trap"
        seeds = range(1, s.comparison_seeds + 1)
        model = root / "trap-model"
        scores: dict[str, list[dict]] = {"NFT": [], "RFT": []}
        with self.stage(f"11. do the wrong answers help? NFT vs RFT on a trap task, {len(seeds)} seeds"):
            if not (model / "config.json").exists():
                self.console.print(f"  teaching the arithmetic model a misconception ({s.trap_steps} steps)")
                create_trap_model(model, base, trap=0.8, steps=s.trap_steps,
                                  progress=lambda m: self.console.print(f"  trap model: {m}"))

            # not the problems the benchmark's first run drew (seeds 4242 and 1000 + s): those of its replication
            # (negatives_trap_replication; the demo evaluates on the first 100 of its 200)
            eval_file = write_trap_problems(root / "eval.jsonl", s.trap_eval, self.cfg.seed + 3000)

            def score(model: Path, name: str) -> dict:
                result = self.math_eval(str(model), f"trap/{name}", eval_file, n=8, progress=False)
                shares = eval_answer_shares(self.out / "eval" / "trap" / name / "samples.jsonl", eval_file)
                return {"avg@8": result["average"]["avg@8"], "trap_rate": shares["trap_rate"]}

            before = score(model, "trap-model")
            self.console.print(f"  trap model: avg@8 {before['avg@8']:.3f}, trap answer in "
                               f"{before['trap_rate']:.1%} of its samples")
            for seed in seeds:
                rollout = root / f"rollout-seed{seed}"
                if not (rollout / "stats.json").exists():
                    rollout_and_verify(RolloutConfig(
                        model=str(model), dataset=write_trap_problems(root / f"train-seed{seed}.jsonl", s.trap_prompts,
                                                                      self.cfg.seed + 2000 + seed),
                        out=str(rollout), n=8, temperature=1.0, max_new_tokens=96, seed=seed, engine="hf",
                        verify_workers=0), progress=False)
                for name in scores:
                    output = root / f"{name.lower()}-seed{seed}"
                    self.train(f"{name.lower()}_offline", str(model), output, [
                        "--dataset", str(rollout), "--max_steps", str(s.trap_train_steps),
                        "--per_device_train_batch_size", "16", "--learning_rate", str(TRAP_LR), "--seed", str(seed),
                        "--logging_steps", str(s.trap_train_steps)], lora=False)
                    scores[name].append(score(output, f"{name.lower()}-seed{seed}"))
                stats = json.loads((rollout / "stats.json").read_text())
                self.console.print(f"  seed {seed}: rollout {stats['positives']} right / {stats['negatives']} wrong; "
                                   f"avg@8 RFT {scores['RFT'][-1]['avg@8']:.3f}, NFT {scores['NFT'][-1]['avg@8']:.3f}")

        def difference(key: str) -> dict:
            return paired_difference([x[key] for x in scores["NFT"]], [x[key] for x in scores["RFT"]])

        self.comparison = {"before": before, "scores": scores, "difference": difference("avg@8"),
                           "trap_difference": difference("trap_rate")}

    # -- report ----------------------------------------------------------------------------------------------
    def comparison_text(self) -> str:
        from negtune.evaluation.stats import format_difference

        c = self.comparison
        if c is None:
            return ""
        d, t = c["difference"], c["trap_difference"]
        verdict = ("the interval excludes 0" if d["excludes_zero"] else "the interval includes 0: no claim at "
                   "this size")
        mean = {m: statistics.fmean(x["avg@8"] for x in xs) for m, xs in c["scores"].items()}
        return (f"Do the wrong answers help? On a trap task (a misconception the model prefers: avg@8 "
                f"{c['before']['avg@8']:.3f}, the trap answer in {c['before']['trap_rate']:.1%} of its samples), "
                f"NFT, which also learns from the wrong rationales, against RFT, which keeps only the right ones, "
                f"on the same rollouts: avg@8 {mean['NFT']:.3f} vs {mean['RFT']:.3f}, NFT - RFT "
                f"{format_difference(d)}; {verdict}. Trap answer, NFT - RFT: {format_difference(t)}. Full "
                f"experiment (more methods, a tuned grid): benchmarks/negatives_trap.py.")

    def table(self) -> Table:
        table = Table(title="negtune demo: what each method did on the embedded tasks")
        for col in ("method", "optimises", "metric: before -> after", "train s"):
            table.add_column(col, overflow="fold")
        for r in self.rows:
            table.add_row(r["method"], r["optimises"], _metrics_text(r, "\n", "->"), f"{r['train_seconds']:.1f}")
        return table

    def write_report(self, total: float) -> Path:
        from negtune.evaluation.report import markdown_table, pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 0.8, 0.9]})
        math_rows = [r for r in self.rows if r["metrics"][0][0] == "held-out avg@4"]
        names = [r["method"] for r in math_rows]
        axes[0].bar(["base"] + names, [math_rows[0]["metrics"][0][1]] + [r["metrics"][0][2] for r in math_rows],
                    color=["grey"] + ["tab:blue"] * len(names))
        axes[0].set_ylabel("held-out avg@4")
        axes[0].set_title("math: base vs fine-tuned (LoRA)")
        unl = {r["method"]: {m[0]: m[1:] for m in r["metrics"]} for r in self.rows if r["method"] in ("GA", "NPO")}
        # forget quality is a KS-test p-value (~1e-3 here): on a linear axis next to probabilities it is invisible
        for ax, metrics, log in ((axes[1], ["forget prob", "model utility"], False),
                                 (axes[2], ["forget quality"], True)):
            xs = range(len(metrics))
            ax.bar([x - 0.27 for x in xs], [unl["GA"][m][0] for m in metrics], 0.27, label="fine-tuned", color="grey")
            for j, method in enumerate(("GA", "NPO")):
                ax.bar([x + 0.27 * j for x in xs], [unl[method][m][1] for m in metrics], 0.27, label=method)
            ax.set_xticks(list(xs), metrics)
            if log:
                ax.set_yscale("log")
                ax.set_title("forget quality (log; higher = closer\nto the retain model)", fontsize=9)
            else:
                ax.set_ylim(0, 1.05)
                ax.legend(fontsize=8)
                ax.set_title("TOFU analogue (forget10)")
        if self.comparison:  # the closing comparison: one line per seed, RFT -> NFT
            ax, scores = axes[3], self.comparison["scores"]
            for rft, nft in zip(scores["RFT"], scores["NFT"]):
                ax.plot([0, 1], [rft["avg@8"], nft["avg@8"]], "o-", color="tab:green" if nft["avg@8"] > rft["avg@8"]
                        else "tab:red", alpha=0.7)
            ax.axhline(self.comparison["before"]["avg@8"], color="grey", ls="--", label="trap model")
            ax.set_xticks([0, 1], ["RFT\n(right only)", "NFT\n(+ wrong)"])
            ax.set_xlim(-0.4, 1.4)
            ax.set_ylabel("held-out avg@8")
            ax.legend(fontsize=8)
            ax.set_title("trap task: one line per seed", fontsize=9)
        fig.tight_layout()
        fig.savefig(self.out / "demo.png", dpi=120)
        plt.close(fig)
        rows = [[r["method"], r["optimises"], _metrics_text(r, "; ", "→"), f"{r['train_seconds']:.1f}"]
                for r in self.rows]
        text = [
            "# negtune demo",
            "",
            f"Embedded default ({'quick' if self.cfg.quick else 'full'} size), seed {self.cfg.seed}; this invocation "
            f"took {total:.0f} s (stages reused from an earlier invocation count as 0). Every number below was "
            "measured by the demo on this machine.",
            "",
            markdown_table(["method", "what it optimises", "metric: before → after", "train s"], rows),
            "",
            "![demo](demo.png)",
            "",
            "Forget quality: KS-test p-value of forget-set truth ratios against the retain model (higher = closer "
            "to never having seen the facts). Model utility: harmonic mean of 9 retain/real-author/world-fact "
            "numbers. Held-out avg@4: 4 samples per problem at temperature 0.6 on unseen arithmetic problems.",
            "",
            "Evaluation reports: " + ", ".join(f"[{p.parent.name}]({p.relative_to(self.out)})"
                                               for p in sorted((self.out / "eval").glob("*/report.md"))),
            "",
            "## Does learning from negatives help?",
            self.comparison_text(),
            "",
            "## Stage times (s)",
            markdown_table(["stage", "seconds"], [[k, v] for k, v in self.stage_seconds.items()]),
            "",
            "## Size",
            "```json\n" + json.dumps(asdict(self.size), indent=2) + "\n```",
        ]
        path = self.out / "report.md"
        path.write_text("\n".join(text) + "\n")
        (self.out / "demo.json").write_text(json.dumps({"rows": self.rows, "comparison": self.comparison,
                                                        "stage_seconds": self.stage_seconds,
                                                        "size": asdict(self.size), "total_seconds": total},
                                                       indent=2))
        return path

    def run(self) -> list[dict[str, Any]]:
        from negtune.data.io import out_lock

        t0 = time.monotonic()
        with out_lock(self.out):  # checked writable; a second demo into the same folder is refused
            base, train_file, eval_file = self.build_math()
            rollout = self.rollout(base, train_file)
            self.math_methods(base, rollout, train_file, eval_file)
            self.unlearning()
            self.compare_trap(base)
            total = time.monotonic() - t0
            self.console.print(self.table())
            self.console.print(self.comparison_text())
            report = self.write_report(total)
        self.console.print(f"total {total:.0f} s; report: {report}")
        return self.rows


def _metrics_text(row: dict, sep: str, arrow: str) -> str:
    return sep.join(f"{name} {_num(a)} {arrow} {_num(b)}" for name, a, b in row["metrics"])


def _num(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2e}" if 0 < abs(x) < 1e-2 else f"{x:.3f}"


def run_demo(out: str = "demo_out", quick: bool = False, seed: int = 0) -> list[dict]:
    return Demo(DemoConfig(out=out, quick=quick, seed=seed)).run()
