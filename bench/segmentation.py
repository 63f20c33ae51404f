"""Bigrams or a dictionary segmenter for search? Recall and false positives on dataset titles.

    python bench/segmentation.py

Generates about 300 Chinese dataset titles (city or road, domain, noun, year; a few
with a brand), each built from words whose boundaries are known (the gold
segmentation). The queries are the dictionary words of 2, 3 and 4 characters found in
the titles: the words ``jieba.cut`` yields, plus their substrings, kept when jieba's
dictionary has them.

A title is relevant to a query when the query occurs in it without cutting a gold word
apart: it starts and ends on word boundaries (交通出行 in 交通|出行|数据), or lies
inside one word (深圳 in 深圳市). An occurrence that starts inside one word and ends
inside another (京东 in 北京|东路) is not relevant. Matched titles are found:

- bigrams: market.listings.text, the query's bigrams as a phrase of the title's tokens
  (what search does); by construction every occurrence matches, so its recall is 1.0,
  computed here rather than assumed;
- jieba: the query and the title each cut with ``jieba.cut_for_search``, a match when
  every query token is among the title's tokens.

Recall: relevant (query, title) pairs matched / relevant pairs. False-positive rate:
matched pairs that are not relevant / matched pairs. A second table does the same for
queries of two adjacent words of a title (交通出行, 深圳交通), which are not dictionary
words but are what people type.

A third method is what search does now: phrases, then pairs (``fallback``): the bigram
phrase, and when it matches fewer than ``PAIRS_BELOW`` titles (of the 300) and reading
the query as pairs (every character in one of the query's bigrams that the title has,
``text.pair_groups``) matches more, the pairs' matches. Two more tables measure it on
what the phrase cannot find, where a title is relevant when each of the query's words
is in it (on word boundaries or inside one word, as above; 深圳 is in 深圳市):

- a place without 市/区/省 and the word after it: 深圳交通 for 深圳市|交通;
- two words of a title (of two characters or more) that are not adjacent in that
  order: 深圳数据 for 深圳|交通|出行|数据, 出行深圳.

The last line printed is one JSON object: both figures for both methods over the
dictionary words and the number of queries, then the recall of both over the two-word
phrases; then the fallback's figures on every set and all three methods' on the last two.
"""

import json
import logging
import random
import re
import sys
import time
from functools import lru_cache
from pathlib import Path

import jieba

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from market.listings.text import PAIRS_BELOW, pair_groups, parse_query, token_string, tokens  # noqa: E402

# Gold segmentations: each entry is the words of one part of a title.
PLACES = [
    ["北京"], ["上海"], ["深圳"], ["广州"], ["杭州"], ["成都"], ["南京"], ["武汉"], ["西安"], ["重庆"],
    ["天津"], ["苏州"], ["东莞"], ["合肥"], ["长沙"], ["郑州"], ["青岛"], ["厦门"], ["宁波"], ["佛山"],
    ["深圳市"], ["上海市"], ["北京", "东路"], ["南京", "东路"], ["浦东", "新区"], ["中山", "西路"],
    ["广东省"], ["江苏省"], ["山东省"], ["华东", "地区"], ["长江", "三角洲"],
]
DOMAINS = [
    ["交通"], ["物流"], ["气象"], ["能源"], ["医疗"], ["企业", "信用"], ["金融"], ["教育"], ["环境"],
    ["农业"], ["电力"], ["公共", "交通"], ["城市", "规划"], ["旅游"], ["零售"],
]
NOUNS = [
    ["出行", "数据"], ["货运", "轨迹"], ["降水", "预报"], ["用电", "负荷"], ["门诊", "统计"], ["信用", "评分"],
    ["客流量"], ["空气", "质量"], ["充电桩", "分布"], ["交通", "事故"], ["药品", "销售"], ["企业", "名录"],
    ["税务", "登记"], ["人口", "普查"], ["房价", "指数"], ["招聘", "信息"], ["快递", "时效"], ["风速", "观测"],
    ["道路", "拥堵", "指数"], ["地铁", "客流"], ["公交", "线路"], ["气温", "监测"], ["电网", "运行", "数据"],
    ["住院", "人次"], ["贷款", "违约", "记录"], ["商品", "价格"], ["水质", "监测"], ["停车场", "分布"],
]
BRANDS = [["京东"], ["美团"], ["滴滴"], ["顺丰"], ["国家", "电网"], ["中国", "移动"]]
YEARS = [str(y) for y in range(2015, 2025)]

_CJK_ONLY = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")


def make_titles(n: int = 300, seed: int = 7) -> list[list[str]]:
    """``n`` distinct titles, each as its gold words."""
    rng = random.Random(seed)
    titles: dict[str, list[str]] = {}
    while len(titles) < n:
        place, domain, noun, year = rng.choice(PLACES), rng.choice(DOMAINS), rng.choice(NOUNS), rng.choice(YEARS)
        shape = rng.random()
        if shape < 0.45:
            words = place + domain + noun + [year, "年"]
        elif shape < 0.75:
            words = [year, "年"] + place + domain + noun
        elif shape < 0.9:
            words = rng.choice(BRANDS) + place + noun
        else:
            words = place + noun + ["月度"] + domain + ["统计"]
        titles.setdefault("".join(words), words)
    return list(titles.values())


def boundaries(words: list[str]) -> set[int]:
    cuts, at = {0}, 0
    for word in words:
        at += len(word)
        cuts.add(at)
    return cuts


def relevant(query: str, title: str, cuts: set[int]) -> bool:
    start = title.find(query)
    while start != -1:
        end = start + len(query)
        inside_one_word = not any(start < c < end for c in cuts)
        if (start in cuts and end in cuts) or inside_one_word:
            return True
        start = title.find(query, start + 1)
    return False


def bigram_match(query: str, title_tokens: str) -> bool:
    return token_string(tokens(query)) in title_tokens


def pairs_match(query: str, title_tokens: str) -> bool:
    """The query read as pairs (search's second reading): each term's groups of bigrams
    each have one in the title; a term without pairs as its phrase."""
    present = _token_set(title_tokens)
    for term in parse_query(query):
        groups = pair_groups(term)
        if groups is None:
            if token_string(list(term.tokens)) not in title_tokens:
                return False
        elif not all(any(pair in present for pair in group) for group in groups):
            return False
    return True


@lru_cache(maxsize=4096)
def _token_set(title_tokens: str) -> frozenset[str]:
    return frozenset(title_tokens.split())


def fallback_matches(query: str, bigram_tokens: list[str]) -> list[bool]:
    """Phrases, then pairs: the phrase's matches, or the pairs' when the phrase matches
    fewer than PAIRS_BELOW titles and the pairs match more (as search decides)."""
    phrase = [bigram_match(query, t) for t in bigram_tokens]
    if sum(phrase) >= PAIRS_BELOW or all(pair_groups(term) is None for term in parse_query(query)):
        return phrase
    pairs = [pairs_match(query, t) for t in bigram_tokens]
    return pairs if sum(pairs) > sum(phrase) else phrase


def measure(queries: list[str], titles: list[str], cuts: list[set[int]], gold: list[list[str]],
            examples: list[str] | None = None,
            words: dict[str, list[str]] | None = None) -> dict[int, dict[str, int]]:
    """Counts per query length: relevant pairs, hits, matches and false matches of the
    three methods. With ``words`` (query → its words), a title is relevant when each
    word is in it; else when the query is."""
    bigram_tokens = [token_string(tokens(t)) for t in titles]
    jieba_tokens = [set(jieba.cut_for_search(t)) for t in titles]
    rows: dict[int, dict[str, int]] = {}
    for query in queries:
        stats = rows.setdefault(len(query), dict.fromkeys(COUNTS, 0))
        stats["queries"] += 1
        query_jieba = set(jieba.cut_for_search(query))
        fallback = fallback_matches(query, bigram_tokens)
        for i, (title, cut, b_tokens, j_tokens) in enumerate(zip(titles, cuts, bigram_tokens, jieba_tokens, strict=False)):
            if words is None:
                is_relevant = relevant(query, title, cut)
            else:
                is_relevant = all(relevant(word, title, cut) for word in words[query])
            by_bigrams = bigram_match(query, b_tokens)
            by_jieba = query_jieba <= j_tokens
            by_fallback = fallback[i]
            stats["fallback_hit"] += is_relevant and by_fallback
            stats["fallback_matched"] += by_fallback
            stats["fallback_false"] += by_fallback and not is_relevant
            stats["relevant"] += is_relevant
            stats["bigram_hit"] += is_relevant and by_bigrams
            stats["jieba_hit"] += is_relevant and by_jieba
            stats["bigram_matched"] += by_bigrams
            stats["jieba_matched"] += by_jieba
            stats["bigram_false"] += by_bigrams and not is_relevant
            stats["jieba_false"] += by_jieba and not is_relevant
            if examples is not None and by_bigrams and not is_relevant and len(examples) < 4:
                examples.append(f"{query} in {'|'.join(gold[i])}")
    return rows


COUNTS = ("queries", "relevant", "bigram_hit", "jieba_hit", "bigram_matched", "jieba_matched", "bigram_false",
          "jieba_false", "fallback_hit", "fallback_matched", "fallback_false")


def ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def summed(rows: dict[int, dict[str, int]]) -> dict[str, int]:
    return {k: sum(r[k] for r in rows.values()) for k in COUNTS}


def print_table(title: str, rows: dict[int, dict[str, int]]) -> None:
    print(title)
    print(f"{'length':>6} {'queries':>7} {'pairs':>6} {'recall bigram':>13} {'recall jieba':>12} "
          f"{'recall fallback':>15} {'FP bigram':>9} {'FP jieba':>8} {'FP fallback':>11}")
    for label, r in [*((str(k), rows[k]) for k in sorted(rows)), ("all", summed(rows))]:
        print(f"{label:>6} {r['queries']:>7} {r['relevant']:>6} {ratio(r['bigram_hit'], r['relevant']):>13.4f} "
              f"{ratio(r['jieba_hit'], r['relevant']):>12.4f} {ratio(r['fallback_hit'], r['relevant']):>15.4f} "
              f"{ratio(r['bigram_false'], r['bigram_matched']):>9.4f} "
              f"{ratio(r['jieba_false'], r['jieba_matched']):>8.4f} "
              f"{ratio(r['fallback_false'], r['fallback_matched']):>11.4f}")
    print()


def figures(prefix: str, total: dict[str, int], methods: tuple[str, ...]) -> dict[str, float]:
    """``{prefix}{method}_recall`` and ``..._false_positive_rate`` of each method."""
    out: dict[str, float] = {}
    for method in methods:
        out[f"{prefix}{method}_recall"] = ratio(total[f"{method}_hit"], total["relevant"])
        out[f"{prefix}{method}_false_positive_rate"] = ratio(total[f"{method}_false"], total[f"{method}_matched"])
    return out


_DROPPED = ("市", "区", "省")


def dropped_queries(gold: list[list[str]]) -> dict[str, list[str]]:
    """A place word without its 市/区/省 and the word after it: 深圳交通 for 深圳市|交通."""
    out: dict[str, list[str]] = {}
    for g in gold:
        for a, b in zip(g, g[1:], strict=False):
            if len(a) >= 3 and a.endswith(_DROPPED) and _CJK_ONLY.match(a + b):
                out.setdefault(a[:-1] + b, [a[:-1], b])
    return out


def two_word_queries(gold: list[list[str]], skip: set[str], n: int = 600, seed: int = 7) -> dict[str, list[str]]:
    """Two words of a title not adjacent in that order (深圳数据, 出行深圳), at most 6 characters;
    words of two characters or more (a lone 年 is not what people type); ``n`` of them
    drawn at random."""
    out: dict[str, list[str]] = {}
    for g in gold:
        for i, a in enumerate(g):
            for j, b in enumerate(g):
                if j in (i, i + 1) or a == b or min(len(a), len(b)) < 2 or not _CJK_ONLY.match(a + b) \
                        or len(a + b) > 6 or a + b in skip:
                    continue
                out.setdefault(a + b, [a, b])
    drawn = random.Random(seed).sample(sorted(out), min(n, len(out)))
    return {q: out[q] for q in drawn}


def main() -> None:
    started = time.perf_counter()
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    gold = make_titles()
    titles = ["".join(words) for words in gold]
    cuts = [boundaries(words) for words in gold]

    # The queries: dictionary words of 2-4 characters jieba finds in the titles, and their substrings.
    frequencies = jieba.dt.FREQ
    words: set[str] = set()
    for title in titles:
        for word in jieba.cut(title):
            if not _CJK_ONLY.match(word):
                continue
            for size in range(2, min(4, len(word)) + 1):
                for i in range(len(word) - size + 1):
                    candidate = word[i:i + size]
                    if frequencies.get(candidate, 0) > 0:
                        words.add(candidate)
    queries = sorted(words, key=lambda q: (len(q), q))
    # Beside them, what people also type: two adjacent words of a title (交通出行, 深圳交通).
    phrase_words = {a + b: [a, b] for g in gold for a, b in zip(g, g[1:], strict=False)
                    if _CJK_ONLY.match(a + b) and len(a + b) <= 6}
    phrases = sorted(set(phrase_words) - words, key=lambda q: (len(q), q))

    # What the phrase cannot find: a place without 市/区/省, and two words apart or swapped.
    dropped = dropped_queries(gold)
    two_words = two_word_queries(gold, set(phrase_words) | words | set(dropped))

    examples: list[str] = []
    rows = measure(queries, titles, cuts, gold, examples)
    phrase_rows = measure(phrases, titles, cuts, gold)
    dropped_rows = measure(sorted(dropped, key=lambda q: (len(q), q)), titles, cuts, gold, words=dropped)
    two_word_rows = measure(sorted(two_words, key=lambda q: (len(q), q)), titles, cuts, gold, words=two_words)
    # The adjacent two words again, relevant when both words are in the title in any order:
    # what the fallback adds to them is then no longer counted false.
    phrase_any_order = summed(measure(phrases, titles, cuts, gold, words=phrase_words))
    total, phrase_total = summed(rows), summed(phrase_rows)
    print(f"{len(titles)} titles; {len(queries)} dictionary-word queries, {len(phrases)} two-word phrases, "
          f"{len(dropped)} without 市/区/省, {len(two_words)} two words apart; pairs below {PAIRS_BELOW} "
          f"phrase matches\n")
    print_table("Dictionary words of 2-4 characters", rows)
    print_table("Two adjacent words of a title", phrase_rows)
    print_table("A place without 市/区/省, then the next word (relevant: both words in the title)", dropped_rows)
    print_table("Two words of a title, apart or swapped (relevant: both words in the title)", two_word_rows)
    print(f"Two adjacent words, relevant when both are in the title: fallback recall "
          f"{ratio(phrase_any_order['fallback_hit'], phrase_any_order['relevant']):.4f}, false positives "
          f"{ratio(phrase_any_order['fallback_false'], phrase_any_order['fallback_matched']):.4f}")
    print("bigram false positives, e.g.: " + ("; ".join(examples) or "none"))
    print(f"({time.perf_counter() - started:.1f} s)")
    print(json.dumps({
        "bigram_recall": ratio(total["bigram_hit"], total["relevant"]),
        "jieba_recall": ratio(total["jieba_hit"], total["relevant"]),
        "bigram_false_positive_rate": ratio(total["bigram_false"], total["bigram_matched"]),
        "jieba_false_positive_rate": ratio(total["jieba_false"], total["jieba_matched"]),
        "queries": len(queries),
        "phrase_bigram_recall": ratio(phrase_total["bigram_hit"], phrase_total["relevant"]),
        "phrase_jieba_recall": ratio(phrase_total["jieba_hit"], phrase_total["relevant"]),
        "phrase_queries": len(phrases),
        **figures("", total, ("fallback",)),
        **figures("phrase_", phrase_total, ("bigram", "fallback")),
        **figures("phrase_any_order_", phrase_any_order, ("bigram", "fallback")),
        "dropped_queries": len(dropped),
        **figures("dropped_", summed(dropped_rows), ("bigram", "jieba", "fallback")),
        "two_word_queries": len(two_words),
        **figures("two_word_", summed(two_word_rows), ("bigram", "jieba", "fallback")),
        "pairs_below": PAIRS_BELOW,
    }))


if __name__ == "__main__":
    main()
