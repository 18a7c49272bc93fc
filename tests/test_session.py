"""The learning keyboard end to end on the shipped model: test-then-train rounds, guards, crash-safe state,
export/import, privacy."""
import random

import pytest
import torch

from app.learning.costs import COST_PARTS
from app.learning.settings import LearnerConfig
from app.typing.loading import load_predictor
from app.storage.personal_file import PersonalFileError
from app.session import Session, SessionConfig
from app.storage.store import Store
from app.typing.user_vocab import CacheWeights
from models.safe_io import save_tensors
from models.tokenizer import BOS_ID

PROBES = ["We met Kowalczyk at the ", "I told my sister that ", "Tomorrow we will go to the "]
NAMES = ["Kowalczyk", "Brenna", "the lake", "the old mill", "my sister", "Dr Osei"]
VERBS = ["walked to", "talked about", "wrote to", "waited for", "laughed with", "cooked for"]
NO_CACHE = CacheWeights.none()  # the user's own word counts left out


def sentences(n, seed=0):
    rng = random.Random(seed)
    return [f"Yesterday {rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(NAMES)} after work." for _ in range(n)]


def garbage(n, seed=1):
    rng = random.Random(seed)
    letters = "qxzjvkwfp"
    return [" ".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(8)) + "."
            for _ in range(n)]


BURST = 8  # sentences of a pasted burst


def open_session(folder, **learner):
    # a budget no machine hits: every round takes all its sentences, so outcomes do not depend on the machine's speed;
    # learning rates a few times the shipped ones, so that a few sentences show
    config = LearnerConfig(**{"mode": "sparse", "lr": {"sparse": 1e-5, "bias-only": 3e-3}, "budget_ms": 60_000,
                              **learner})
    return Session(load_predictor(), Store(folder), config, SessionConfig(background=False, autosave=False))


def suggestions(session):
    session.predictor.invalidate()
    return [session.suggest(p) for p in PROBES]


@pytest.fixture
def learned(tmp_path):
    session = open_session(tmp_path / "data")
    for s in sentences(30):
        session.commit_sentences([s])
    assert session.stats.rounds_accepted > 0 and session.learner.deltas()
    yield session
    session.close()


def test_typed_text_becomes_sentences_for_the_learner(tmp_path):
    session = open_session(tmp_path)
    assert session.text_changed("Hello there. How are") == ["Hello there."]
    assert session.text_changed("Hello there. How are you?\nFine") == ["How are you?"]
    assert session.store.history.sentences() == ["Hello there.", "How are you?"]
    assert session.learner.sentences == ["Hello there.", "How are you?"]
    session.close()


def test_a_pasted_garbage_burst_leaves_suggestions_and_word_statistics_unchanged(learned):
    before_words, before_deltas = suggestions(learned), learned.learner.deltas()
    rolled = learned.stats.rounds_rolled_back
    burst = garbage(BURST)
    learned.text_changed(" ".join(burst) + " ")
    assert learned.stats.rounds_rolled_back == rolled + 1
    assert suggestions(learned) == before_words
    assert not any(w.strip(".") in learned.predictor.user_words for s in burst for w in s.split())  # nor counted
    after = learned.learner.deltas()
    assert all(torch.equal(after[k], before_deltas[k]) for k in before_deltas)


def test_learning_makes_later_text_and_a_new_name_likelier(tmp_path):
    session = open_session(tmp_path, keep_scores=True)
    for s in sentences(40):
        session.commit_sentences([s])
    learner = session.learner
    later = learner.scored()[-20:]  # each segment scored before it was learned, by the personal and the base model
    assert sum(s.personal for s in later) < 0.9 * sum(s.base for s in later)
    row = [BOS_ID, *learner.tokenizer.encode("We met Kowalczyk at the lake.")]
    name = len(learner.tokenizer.encode("at the lake.")) + 1
    personal, base = learner.judge.losses([row], name + 3)[0], learner.judge.base_loss(row, name + 3)
    assert personal < base - 0.5  # the name (and what follows) learned, not only the sentences seen
    session.close()


def test_a_segments_loss_is_recorded_before_any_update_that_saw_it(tmp_path):
    session = open_session(tmp_path, keep_scores=True)
    learner = session.learner
    steps = []
    plan = learner.plans.ensure()
    step = plan.step

    def recording(batch, *args, positions=None, **kwargs):
        # the weights as they are before this step (the context as the plan remembers it, from earlier weights)
        steps.append(plan.evaluate_rows(batch, positions=positions)[0])
        return step(batch, *args, positions=positions, **kwargs)

    plan.step = recording
    long = "Yesterday " + ", then ".join(f"{n} {v} {m}" for n, v, m in zip(NAMES, VERBS, reversed(NAMES))) + "."
    session.commit_sentences(["We met at the lake.", long])
    scores = learner.scored()
    assert len(scores) == len(steps) >= 3  # the long sentence is cut into segments of at most 16 tokens
    assert all(s.tokens <= learner.config.segment for s in scores)
    assert [s.personal for s in scores] == pytest.approx(steps, abs=1e-5)
    assert scores[0].personal == pytest.approx(scores[0].base, abs=1e-5)  # nothing learned before the first
    assert scores[-1].personal != pytest.approx(scores[-1].base, abs=1e-4)  # the earlier segments were
    session.close()


def test_deleting_learned_text_and_typing_it_again_does_not_learn_it_twice(tmp_path):
    session = open_session(tmp_path)
    session.text_changed("We met Brenna at the lake. Then we walked home. ")
    steps, recorded = session.stats.steps, list(session.store.history.sentences())
    session.text_changed("We met Brenna at the lake. ")  # the second sentence deleted
    session.text_changed("We met Brenna at the lake. Then we walked home. ")  # and typed again
    assert session.stats.steps == steps and session.store.history.sentences() == recorded
    session.text_changed("We met Brenna at the lake. Then we walked home. It rained. ")
    assert session.stats.steps > steps and session.store.history.sentences() == recorded + ["It rained."]
    session.text_changed("")  # a new document: the same sentence typed there is new text
    session.text_changed("Then we walked home. ")
    assert session.store.history.sentences() == recorded + ["It rained.", "Then we walked home."]
    session.close()


def test_kill_and_restart_keeps_the_last_saved_state(learned, tmp_path):
    learned.save()
    # the history keeps every sentence as it comes, so the user's word counts after the restart include the later
    # ones; the suggestions compared are the model's alone, which the save restores
    learned.predictor.config.mix.cache = NO_CACHE
    saved, words = learned.learner.deltas(), suggestions(learned)
    for s in sentences(10, seed=5):
        learned.commit_sentences([s])  # learned after the save, then the process dies without closing
    (learned.store.folder / ".personal.safetensors.123.tmp").write_bytes(b"half a write")
    learned.store._lock.close()  # the process died: the system drops its lock on the folder
    restarted = open_session(learned.store.folder)
    restarted.predictor.config.mix.cache = NO_CACHE
    assert len(restarted.store.history.sentences()) == 40
    loaded = restarted.learner.deltas()
    assert set(loaded) == set(saved) and all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert suggestions(restarted) == words
    assert not list(learned.store.folder.glob("*.tmp"))
    restarted.close()


def test_export_reset_import_restores_identical_suggestions(learned, tmp_path):
    words = suggestions(learned)
    learned.export(tmp_path / "me.pkb", with_history=True)
    learned.reset()
    assert learned.learner.deltas() == {} and learned.store.history.sentences() == []
    assert suggestions(learned) != words
    learned.import_file(tmp_path / "me.pkb")
    assert suggestions(learned) == words
    assert len(learned.store.history.sentences()) == 30


def test_rejected_import_changes_nothing(learned, tmp_path):
    learned.export(tmp_path / "me.pkb")
    words, deltas = suggestions(learned), learned.learner.deltas()
    data = (tmp_path / "me.pkb").read_bytes()
    (tmp_path / "cut.pkb").write_bytes(data[: len(data) // 2])
    save_tensors(tmp_path / "plain.safetensors", {"x": torch.zeros(2)})
    for bad in ("cut.pkb", "plain.safetensors"):
        with pytest.raises(PersonalFileError):
            learned.import_file(tmp_path / bad)
    assert suggestions(learned) == words
    assert all(torch.equal(learned.learner.deltas()[k], v) for k, v in deltas.items())


def test_incognito_records_and_learns_nothing(tmp_path):
    session = open_session(tmp_path)
    session.incognito = True
    for s in sentences(10):
        session.text_changed(s + " ")
    assert session.store.history.sentences() == [] and session.learner.deltas() == {}
    assert session.stats.steps == 0
    session.close()


def test_forget_removes_the_word_from_history_and_suggestions(learned):
    learned.commit_sentences(["Thank you very much for the cake."])
    assert "much" in learned.suggest("Thank you very ")
    removed = learned.forget("MUCH")
    assert removed == 1
    assert not any("much" in s.lower() for s in learned.store.history.sentences() + learned.learner.sentences)
    assert "much" not in [w.lower() for w in learned.suggest("Thank you very ")]
    assert learned.commit_sentences(["So much cake."]) == 0


def test_mode_switch_keeps_what_was_learned(learned):
    deltas, words = learned.learner.deltas(), suggestions(learned)
    learned.set_mode("bias-only")
    assert suggestions(learned) == words
    for s in sentences(12, seed=9):
        learned.commit_sentences([s])
    after = learned.learner.deltas()
    untouched = [k for k in deltas if not (k.endswith("bias") or ".ln_" in k or k.startswith("ln_f"))]
    assert untouched and all(torch.equal(after[k], deltas[k]) for k in untouched)
    assert any(not torch.equal(after[k], deltas.get(k, torch.zeros_like(after[k]))) for k in after)
    learned.set_mode("off")
    steps = learned.stats.steps
    learned.commit_sentences(["Nothing is learned from this one."])
    assert learned.stats.steps == steps


def test_once_the_model_has_learned_suggestions_weigh_the_word_statistics_and_new_words_at_the_learned_shares(
        tmp_path):
    session = Session(load_predictor(), Store(tmp_path / "data"), LearnerConfig(mode="sparse", budget_ms=60_000),
                      SessionConfig(background=False, autosave=False, learned_word_stats=0.25, learned_new_words=1.5))
    combiner = session.predictor.combiner
    session.suggest("We met Kow")
    # nothing learned: the statistics count whole, and new words as the mix gives them
    assert (combiner.word_stats_share, combiner.new_word_factor) == (1.0, 1.0)
    session.commit_sentences(["Kowalczyk sent a card.", "We wrote to Kowalczyk."])
    session.suggest("We met Kow")
    assert session.learner.has_learned() and (combiner.word_stats_share, combiner.new_word_factor) == (0.25, 1.5)
    session.reset()  # back to the base model
    session.suggest("We met Kow")
    assert (combiner.word_stats_share, combiner.new_word_factor) == (1.0, 1.0)
    session.close()


def test_background_worker_learns_while_suggestions_go_on(tmp_path):
    config = LearnerConfig(mode="sparse")
    session = Session(load_predictor(), Store(tmp_path), config, SessionConfig(background=True, autosave=True,
                                                                             save_seconds=0.0))
    session.text_changed(" ".join(sentences(12)) + " ")
    words = [session.suggest("Yesterday Brenna walked to ") for _ in range(20)]
    assert all(len(w) == 3 for w in words)
    assert session.worker.idle(timeout=60)
    assert session.stats.rounds_accepted + session.stats.rounds_rolled_back >= 1
    assert (tmp_path / "personal.safetensors").exists() or session.stats.rounds_accepted == 0
    session.close()


def test_new_text_predicted_worse_than_by_the_base_model_halves_the_personal_delta(tmp_path):
    """Each new sentence is scored before it is learned; a personal model that predicts new text worse than the base
    model (here: noise in its weights) is pulled back halfway to the base. One that predicts it better is kept."""
    session = open_session(tmp_path, judged_segments=4)  # with one segment in 8 judged: the last 32 segments
    for s in sentences(30):
        session.commit_sentences([s])
    pulled = session.stats.pullbacks
    assert session.learner.deltas()
    noise = {"wte.weight": 0.5 * torch.randn(4096, 256, generator=torch.Generator().manual_seed(0))}
    session.learner.load_deltas(noise, session.learner.sentences)
    for s in sentences(20, seed=9):
        before = session.learner.deltas()["wte.weight"].norm()
        session.commit_sentences([s])
        if session.stats.pullbacks > pulled:
            break
    assert session.stats.pullbacks == pulled + 1
    after = session.learner.deltas()["wte.weight"].norm()
    assert 0.4 < after / before < 0.65  # halved, plus the round's own small step
    session.close()


def test_rolled_back_sentences_are_forgotten_when_the_history_drops_them(learned):
    rolled = learned.stats.rounds_rolled_back
    learned.text_changed(" ".join(garbage(BURST)) + " ")
    junk = set(garbage(BURST))
    assert learned.stats.rounds_rolled_back == rolled + 1 and junk & learned.learner.stream.rejected
    learned.learner.stream.max_sentences = 12
    for s in sentences(12, seed=4):
        learned.commit_sentences([s])
    assert len(learned.learner.sentences) == 12 and not junk & learned.learner.stream.rejected
    assert learned.learner.stream.rejected <= set(learned.learner.sentences)


def test_the_users_word_statistics_take_in_kept_rounds_and_with_learning_off_every_sentence(tmp_path):
    session = open_session(tmp_path / "sparse")
    session.commit_sentences(["We drove to Zakopane with Brenna."])
    assert session.stats.rounds_accepted == 1 and "zakopane" in session.predictor.user_words
    session.set_mode("off")
    session.commit_sentences(["Then Marzanna came along."])
    assert "marzanna" in session.predictor.user_words and session.stats.rounds_accepted == 1
    session.close()


def test_sentences_a_mode_switch_leaves_unlearned_still_count_once(tmp_path):
    session = open_session(tmp_path / "switch")
    session.learner.add("We met Ottokar by the river.")  # typed while a round ran: not learned yet
    session.set_mode("off")
    assert "ottokar" in session.predictor.user_words
    got = []
    session.learner.stream.absorb = got.extend
    session.set_mode("sparse")
    session.learner.add("Brenna likes tea.")
    session.learner.add("Brenna likes coffee.")
    with session.learner._lock:
        session.learner._sync()  # takes both in, unlearned
    session.learner.replace_sentences(["Brenna likes coffee."])  # forget: the caller recounts what is left
    session.learner.run_round()
    assert got == []
    session.close()


def test_the_general_check_from_kept_hidden_states_scores_the_weights_as_they_now_are(learned):
    """The general check reuses states of the blocks learning has not changed: it must equal a fresh pass, after
    kept and rolled-back rounds and a mode switch."""
    learner = learned.learner

    def check():
        fresh = learner.judge.losses(learner.judge.general, learner.config.general_scored)
        assert learner.judge.general_loss() == pytest.approx(sum(fresh) / len(fresh), abs=1e-6)

    check()
    rolled = learned.stats.rounds_rolled_back
    learned.text_changed(" ".join(garbage(BURST)) + " ")
    assert learned.stats.rounds_rolled_back == rolled + 1
    check()
    learned.set_mode("bias-only")  # biases of every block train next: no block's states can be kept
    for s in sentences(6, seed=5):
        learned.commit_sentences([s])
    assert learner.model.first_block_changed_by(learner.judge.moved) == 0
    check()


def test_a_rolled_back_burst_stays_out_after_a_restart_and_an_export_and_import(learned, tmp_path):
    rolled = learned.stats.rounds_rolled_back
    burst = garbage(BURST)
    learned.text_changed(" ".join(burst) + " ")
    assert learned.stats.rounds_rolled_back == rolled + 1
    junk = {w.strip(".") for s in burst for w in s.split()}
    learned.export(tmp_path / "me.pkb", with_history=True)
    learned.save()
    learned.close()  # the restart below takes the folder over
    for session in (open_session(learned.store.folder), open_session(tmp_path / "other")):
        if session.store.folder != learned.store.folder:
            session.import_file(tmp_path / "me.pkb")
        assert set(burst) <= set(session.store.history.sentences())  # the user's text stays theirs
        assert set(burst) <= session.learner.stream.rejected  # marked in the history ...
        assert not junk & set(session.predictor.user_words.counts)  # ... nor counted
        assert "yesterday" in session.predictor.user_words
        session.close()


def test_an_error_in_a_learning_round_pauses_learning_logs_it_and_typing_goes_on(tmp_path, monkeypatch):
    predictor = load_predictor()
    session = Session(predictor, Store(tmp_path / "data"), config=SessionConfig(log_dir=str(tmp_path / "log")))
    try:
        def broken_round():
            raise RuntimeError("injected failure")
        monkeypatch.setattr(session.learner, "run_round", broken_round)
        session.commit_sentences(["We walked to the lake after work."])
        assert session.worker.idle(timeout=60)
        assert session.status.startswith("learning paused: RuntimeError: injected failure")
        log = (tmp_path / "log" / "pocketkb.log").read_text()
        assert "learning paused" in log and "injected failure" in log and "Traceback" in log
        assert session.strip("Thank you very ").words  # suggestions still work ...
        assert session.commit_sentences(["We walked home."]) == 1  # ... and the history still records
    finally:
        session.close()


def test_a_failing_history_write_is_reported_and_later_writes_work(tmp_path):
    session = open_session(tmp_path / "data")
    try:
        assert session.commit_sentences(["The first sentence is safe."]) == 1
        db = session.store.history._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        many = [f"Sentence number {i} fills a page {'x' * 300}." for i in range(40)]
        assert session.commit_sentences(many) == 0
        assert session.status.startswith("could not write the history (database or disk is full)")
        assert session.store.history.sentences() == ["The first sentence is safe."]  # the earlier history is intact
        assert not db.in_transaction
        db.execute("PRAGMA max_page_count = 1073741823")  # space is back
        assert session.commit_sentences(["Writing works again."]) == 1 and session.status == ""
        assert session.store.history.sentences()[-1] == "Writing works again."
    finally:
        session.close()


def test_adapted_mixture_weights_are_kept_with_the_personal_model_and_learn_nothing_while_incognito(tmp_path):
    from app.typing.combiner import MixConfig
    from app.typing.mixture import AdaptConfig
    from app.typing.predictor_config import PredictorConfig

    def open_adaptive():
        predictor = load_predictor(config=PredictorConfig(mix=MixConfig(adapt=AdaptConfig(rate=0.5))))
        return Session(predictor, Store(tmp_path / "data"), LearnerConfig(mode="off"),
                       SessionConfig(background=False, autosave=False))

    def type_text(session, text):
        for i in range(len(text) + 1):
            session.text_changed(text[:i])
            session.suggest(text[:i])

    session = open_adaptive()
    weights = session.predictor.combiner.weights
    start = weights.weights()
    text = "Kowalczyk sent a card. We wrote to Kowalczyk. Kowalczyk wrote to Kowalczyk again. "
    type_text(session, text)
    learned = weights.weights()
    assert weights.words > 5 and learned != start
    session.incognito = True
    type_text(session, text + "Kowalczyk came to see Kowalczyk. ")
    assert weights.weights() == learned  # incognito: nothing learned, the mixture neither
    session.incognito = False
    session.save()
    session.close()
    again = open_adaptive()
    assert again.predictor.combiner.weights.weights() == pytest.approx(learned)
    again.reset()
    assert again.predictor.combiner.weights.weights() == pytest.approx(start) and \
        again.predictor.combiner.weights.words == 0
    again.close()


def test_the_embedding_learns_only_the_rows_of_tokens_the_user_typed_and_knows_them_after_a_restart(learned):
    typed = learned.learner.plans.typed.clone()
    delta = learned.learner.deltas()["wte.weight"]
    assert 0 < int(typed.sum()) < len(typed) // 10
    assert torch.equal(delta[~typed], torch.zeros_like(delta[~typed]))  # words never typed keep the base rows
    assert delta[typed].abs().sum() > 0
    learned.save()
    learned.store._lock.close()
    restarted = open_session(learned.store.folder)
    assert torch.equal(restarted.learner.plans.typed, typed)  # rebuilt from the history
    restarted.close()


def test_the_learners_time_by_part_adds_up_to_its_rounds(tmp_path):
    session = open_session(tmp_path)
    for s in sentences(6):
        session.commit_sentences([s])
    stats = session.learner.stats
    assert set(stats.parts_ms) <= set(COST_PARTS)
    assert {"context", "step", "base", "checks", "general", "snapshot", "publish"} <= {p for p, ms in stats.parts_ms.items()
                                                                            if ms > 0}
    assert sum(stats.parts_ms.values()) == pytest.approx(stats.learn_ms)
    session.close()
