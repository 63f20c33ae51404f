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
words but are what people type. The last line printed is one JSON object: both figures
for both methods over the dictionary words and the number of queries, then the recall
of both over the two-word phrases.
"""

import json
import logging
import random
import re
import sys
import time
from pathlib import Path

import jieba

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from market.listings.text import token_string, tokens  # noqa: E402

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


def measure(queries: list[str], titles: list[str], cuts: list[set[int]], gold: list[list[str]],
            examples: list[str] | None = None) -> dict[int, dict[str, int]]:
    """Counts per query length: relevant pairs, hits, matches and false matches of both methods."""
    bigram_tokens = [token_string(tokens(t)) for t in titles]
    jieba_tokens = [set(jieba.cut_for_search(t)) for t in titles]
    rows: dict[int, dict[str, int]] = {}
    for query in queries:
        stats = rows.setdefault(len(query), dict.fromkeys(COUNTS, 0))
        stats["queries"] += 1
        query_jieba = set(jieba.cut_for_search(query))
        for i, (title, cut, b_tokens, j_tokens) in enumerate(zip(titles, cuts, bigram_tokens, jieba_tokens, strict=False)):
            is_relevant = relevant(query, title, cut)
            by_bigrams = bigram_match(query, b_tokens)
            by_jieba = query_jieba <= j_tokens
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
          "jieba_false")


def ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def summed(rows: dict[int, dict[str, int]]) -> dict[str, int]:
    return {k: sum(r[k] for r in rows.values()) for k in COUNTS}


def print_table(title: str, rows: dict[int, dict[str, int]]) -> None:
    print(title)
    print(f"{'length':>6} {'queries':>7} {'pairs':>6} {'recall bigram':>13} {'recall jieba':>12} "
          f"{'FP bigram':>9} {'FP jieba':>8}")
    for label, r in [*((str(k), rows[k]) for k in sorted(rows)), ("all", summed(rows))]:
        print(f"{label:>6} {r['queries']:>7} {r['relevant']:>6} {ratio(r['bigram_hit'], r['relevant']):>13.4f} "
              f"{ratio(r['jieba_hit'], r['relevant']):>12.4f} {ratio(r['bigram_false'], r['bigram_matched']):>9.4f} "
              f"{ratio(r['jieba_false'], r['jieba_matched']):>8.4f}")
    print()


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
    phrases = sorted({a + b for g in gold for a, b in zip(g, g[1:], strict=False)
                      if _CJK_ONLY.match(a + b) and len(a + b) <= 6} - words, key=lambda q: (len(q), q))

    examples: list[str] = []
    rows = measure(queries, titles, cuts, gold, examples)
    phrase_rows = measure(phrases, titles, cuts, gold)
    total, phrase_total = summed(rows), summed(phrase_rows)
    print(f"{len(titles)} titles; {len(queries)} dictionary-word queries, {len(phrases)} two-word phrases\n")
    print_table("Dictionary words of 2-4 characters", rows)
    print_table("Two adjacent words of a title", phrase_rows)
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
    }))


if __name__ == "__main__":
    main()
