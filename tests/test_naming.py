from segmentation.naming import describe, feature_role, name_segments

SYNTHETIC = ("age", "annual_income", "spending", "purchase_frequency")
MALL = ("Annual Income (k$)", "Spending Score (1-100)")


def test_roles_come_from_words_in_the_column_names():
    assert [feature_role(f) for f in SYNTHETIC] == ["age", "income", "spending", "frequency"]
    assert [feature_role(f) for f in MALL] == ["income", "spending"]
    assert feature_role("Genre") is None
    assert feature_role("monetary") == "spending" and feature_role("orders_per_year") == "frequency"


def test_the_seed_documents_archetypes():
    centroids = [
        [0.7, -0.7, -1.0, -1.0],  # older, low income, low spending, rare
        [-0.4, -0.1, 0.4, -0.2],  # nothing stands out
        [-1.5, -1.1, -0.3, 1.6],  # young, frequent, small baskets
        [0.2, 1.1, 2.0, 0.6],  # big spenders
        [1.2, 1.7, -0.6, -0.8],  # rich, careful
    ]
    assert name_segments(SYNTHETIC, centroids) == [
        "Low-Engagement",
        "Mainstream",
        "Young frequent buyers",
        "High-Value",
        "Affluent careful spenders",
    ]


def test_mall_segments_get_five_distinct_names():
    centroids = [[-0.2, -0.03], [1.0, 1.2], [-1.3, 1.1], [1.0, -1.3], [-1.3, -1.1]]
    assert name_segments(MALL, centroids) == [
        "Mainstream",
        "High-Value",
        "Budget big spenders",
        "Affluent careful spenders",
        "Low-Engagement",
    ]


def test_names_are_unique_and_deterministic():
    centroids = [[0.0, 2.0], [0.1, 1.2], [0.0, 0.9], [0.0, 0.1], [0.05, 0.0]]
    names = name_segments(MALL, centroids)
    assert len(set(names)) == len(names)
    assert names[0] == "High-Value"  # the strongest match keeps the archetype
    assert names[1] == "High Spending Score (1-100)"
    assert names[2] == "High Spending Score (1-100) (2)"
    # Mainstream goes to the centroid nearest the overall mean.
    assert names[4] == "Mainstream" and names[3] == "Mainstream (2)"
    assert names == name_segments(MALL, centroids)


def test_describe_uses_the_two_most_distinctive_features():
    assert describe(("a", "b", "c"), [0.1, -2.0, 0.9]) == "Low b, high c"
    assert describe(("a", "b"), [0.2, 0.1]) == "Mainstream"


RFM = ("recency_days", "frequency", "monetary")


def test_rfm_features_get_rfm_names():
    centroids = [
        [-1.0, 1.5, 1.4],  # recent, frequent, big
        [1.5, -1.0, -1.0],  # long gone, one small order
        [-1.2, -1.1, -0.3],  # recent, one order
        [1.0, 0.8, 0.7],  # used to buy a lot, lapsed
        [0.0, 0.1, -0.2],  # nothing stands out
        [-0.8, 1.0, 0.9],  # another frequent one, a little less recent
        [0.2, -0.9, -0.6],  # drifting away
    ]
    assert name_segments(RFM, centroids) == [
        "Champions", "Hibernating", "New", "At risk", "Need attention", "Loyal", "About to sleep",
    ]


def test_rfm_needs_all_three_roles_and_ignores_one_hot_categories():
    assert name_segments(("recency_days", "monetary"), [[-1.0, 1.0], [1.0, -1.0]]) == [
        "High-Value", "Low-Engagement"]
    features = ("Genre=Female", "Genre=Male", "monetary")
    names = name_segments(features, [[2.0, -2.0, 0.1], [-2.0, 2.0, 0.0]], frozenset(features[:2]))
    assert names == ["Mainstream (2)", "Mainstream"]
