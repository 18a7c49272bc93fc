"""The user's vocabulary: counts, spellings that ignore sentence-start capitals, lookup by prefix."""
from app.user_vocab import UserVocabulary


def test_most_frequent_completions_in_the_users_spelling():
    vocab = UserVocabulary(["Kowalczyk came.", "I met Kowalczyk and kowtow.", "Kowalczyk again. Kow"])
    assert vocab.with_prefix("kow", 5) == ["Kowalczyk", "kowtow"]
    assert vocab.with_prefix("KOWT", 5) == ["kowtow"]
    assert vocab.with_prefix("kowtow", 5) == []  # nothing longer to complete
    assert vocab.with_prefix("kow", 1) == ["Kowalczyk"]
    assert "met" in vocab and "Met" not in vocab and len(vocab) == 8


def test_a_sentence_start_capital_is_not_the_words_spelling():
    vocab = UserVocabulary(["Tomorrow is fine.", "See you tomorrow."])
    assert vocab.with_prefix("tom", 3) == ["tomorrow"]
    vocab.add_sentence("Gdansk is far.")
    assert vocab.with_prefix("gd", 3) == ["Gdansk"]
