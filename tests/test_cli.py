"""Smoke tests of the `pocketkb` command line on small texts the tests write themselves."""
import io
import json
import re
from pathlib import Path

from app.cli import main
from app.terminal import accept, run_piped

TEXT = "Thank you very much for coming. I don't know what to say. See you tomorrow!\n" * 3


def test_predict_prints_three_words_and_time(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "predict", "Thank you very "]) == 0
    words, timing = capsys.readouterr().out.strip().splitlines()
    assert len(words.split(" | ")) == 3 and "much" in words
    assert timing.endswith(" ms")


def test_predict_uses_the_data_folders_personal_model_and_words_and_base_leaves_them_out(tmp_path, capsys):
    from app.learning.settings import LearnerConfig
    from app.session import Session, SessionConfig
    from app.storage.store import Store
    from app.typing.loading import load_predictor

    session = Session(load_predictor(), Store(tmp_path), LearnerConfig(budget_ms=60_000),
                      SessionConfig(background=False, save_seconds=0.0))
    session.commit_sentences(["Tomorrow we start the Brightwater bakery.", "Oksana runs the Brightwater bakery.",
                              "We love Brightwater and its bread."] * 3)
    assert session.stats.rounds_accepted > 0
    session.close()
    assert main(["--data", str(tmp_path), "predict", "Tomorrow we start the B"]) == 0
    assert "Brightwater" in capsys.readouterr().out.splitlines()[0]
    assert main(["--data", str(tmp_path), "predict", "--base", "Tomorrow we start the B"]) == 0
    assert "Brightwater" not in capsys.readouterr().out.splitlines()[0]


def test_a_data_folder_in_use_is_refused_with_a_clear_message(tmp_path, capsys):
    from app.storage.store import Store

    holder = Store(tmp_path)
    try:
        assert main(["--data", str(tmp_path), "reset"]) == 2
        assert "in use by another Pocket Keyboard" in capsys.readouterr().err
        assert main(["--data", str(tmp_path), "predict", "Thank you very "]) == 0  # looking is allowed
    finally:
        holder.close()


def test_eval_writes_table_and_json(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    out = tmp_path / "eval.json"
    assert main(["eval", str(text), "--chars", "200", "--processes", "1", "--no-presage", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "KSR" in printed and "perplexity" in printed
    result = json.loads(out.read_text())
    neural = result["systems"][0]
    assert 0 < neural["ksr"] < 100 and neural["words"] > 20


def test_eval_missing_file_is_a_clear_error(capsys):
    assert main(["eval", "/no/such/file.txt"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bench_predict(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    assert main(["bench", "predict", "--text", str(text), "--keystrokes", "60"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("learning rounds ran in the background while typing")
    assert int(lines[0].split()[0]) >= 1
    assert lines[1].startswith("kv-cache reuse") and lines[2].startswith("no cache reuse")
    assert lines[3].startswith("learning sparse") and lines[4].startswith("p95 while learning / idle")
    assert "keystrokes     60" in lines[1]


def test_piped_terminal_mode(shipped_predictor):
    out = io.StringIO()
    run_piped(shipped_predictor.strip, io.StringIO("Thank you very \nI don't know what to \nThank you very\n"), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "much" in lines[0]
    assert lines[2].startswith("“very”")  # the typed word, a known one, set apart in quotes


def test_accept_replaces_the_typed_prefix():
    assert accept("Thank you ve", "very") == "Thank you very "
    assert accept("I don'", "t") == "I don't "


def test_bench_engine_writes_json(tmp_path, capsys):
    out = tmp_path / "engine.json"
    assert main(["bench", "engine", "--repeats", "1", "--json", str(out)]) == 0
    assert "pytorch full fine-tuning" in capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    assert {"sparse", "lora", "naive freezing of sparse"} <= set(rows)
    assert rows["sparse"]["trainable_parameters"] < rows["pytorch full fine-tuning"]["trainable_parameters"]


def _users_file(tmp_path):
    """A user who writes a sentence, a post longer than the text the predictor counts words in lately
    (`RECENT_CHARS`), then the sentence again: only their learned statistics remember it."""
    from app.typing.sources import RECENT_CHARS

    said = "Thank you very much for the cake. I don't know what to say."
    between = "We walked along the river and talked about the weather. " * (RECENT_CHARS // 50)
    posts = [{"date": f"2004-01-{d:02d}", "text": text} for d, text in enumerate((said, between, said), start=1)]
    path = tmp_path / "users.jsonl"
    path.write_text(json.dumps({"user": "1", "posts": posts}) + "\n")
    return path


def test_simulate_writes_table_json_and_plot(tmp_path, capsys):
    args = ["simulate", "--users", str(_users_file(tmp_path)), "--limit", "1", "--chars", "5000",
            "--modes", "off", "sparse", "--processes", "1", "--no-presage", "--docs", str(tmp_path / "docs")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "last 1/4" in printed and "sparse vs off" in printed and "the word cache alone" in printed
    result = json.loads((tmp_path / "docs" / "simulate.json").read_text())
    rows = result["rows"]
    assert set(rows) == {"off", "off, no word cache", "sparse"} and rows["sparse"]["accepted"] >= 1
    assert rows["off"]["ksr"] > rows["off, no word cache"]["ksr"]  # the repeated sentences are the user's own
    assert (tmp_path / "docs" / "simulate_ksr.svg").read_text().startswith("<svg")
    assert main(["simulate", "--users", str(tmp_path / "users.jsonl"), "--modes", "fast"]) == 2


def test_export_import_reset_and_a_bad_import(tmp_path, capsys):
    data = ["--data", str(tmp_path / "data")]
    assert main([*data, "export", str(tmp_path / "me.pkb"), "--with-history"]) == 0
    assert main([*data, "import", str(tmp_path / "me.pkb")]) == 0
    (tmp_path / "bad.pkb").write_bytes(b"\x80\x04K\x01.")  # a pickle
    assert main([*data, "import", str(tmp_path / "bad.pkb")]) == 2
    assert "nothing changed" in capsys.readouterr().err
    assert main([*data, "reset"]) == 0


def test_pretrain_rejects_a_corpus_weight_that_is_not_a_number(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    assert main(["pretrain", "--corpus", f"{text}:lots", "--out", str(tmp_path / "out")]) == 2
    assert "corpus weight must be a number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_build_prior_writes_a_prior_that_loads(tmp_path, capsys):
    from models.word_prior import WordPrior

    text = tmp_path / "text.txt"
    text.write_text(TEXT * 20)
    out = tmp_path / "prior.npz"
    assert main(["build-prior", "--corpus", str(text), "--out", str(out)]) == 0
    assert "2-grams" in capsys.readouterr().out
    prior = WordPrior.load(out)
    assert prior.candidates(("thank", "you", "very"), "", 1)[0] == "much"
    assert main(["build-prior", "--corpus", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    pruned = tmp_path / "pruned.npz"  # n-grams seen under 100 times left out: fewer kept
    assert main(["build-prior", "--corpus", str(text), "--out", str(pruned), "--min-counts", "100", "100", "100"]) == 0
    assert sum(len(level.next) for level in WordPrior.load(pruned).t.levels) < sum(len(lv.next) for lv in prior.t.levels)
    weighted = tmp_path / "weighted.npz.xz"  # weighted-difference pruning on top: fewer again, and it loads
    assert main(["build-prior", "--corpus", str(text), "--out", str(weighted), "--prune-threshold", "50"]) == 0
    kept = sum(len(level.next) for level in WordPrior.load(weighted).t.levels)
    assert 0 < kept < sum(len(lv.next) for lv in prior.t.levels)
    assert main(["build-prior", "--corpus", str(text), "--out", str(pruned), "--min-counts", "2"]) == 2
    assert "order - 1 minimum counts" in capsys.readouterr().err


def test_python_dash_m_app_runs_the_cli_and_tells_its_version():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "app", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("pocketkb 0.")


def test_each_bench_target_has_its_own_options(capsys):
    import pytest

    with pytest.raises(SystemExit):  # --kills belongs to crash, not to predict
        main(["bench", "predict", "--kills", "3"])
    assert "unrecognized arguments: --kills" in capsys.readouterr().err


def test_a_baseline_checkout_is_named_by_its_commit_not_by_a_path_of_this_machine(tmp_path):
    from app.cli.bench import _build_name

    root = Path(__file__).resolve().parents[1]
    assert re.fullmatch(r"commit [0-9a-f]{7,}", _build_name(str(root)))
    assert _build_name(str(tmp_path / "old5")) == "old5"
