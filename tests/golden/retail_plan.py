# Decision plan for ruleset 'retail': generated code, do not edit.
"""The decision plan of ruleset 'retail': 11 rules, 14 conjunctions, 3 slots, 24 features.

Each conjunction of a rule's condition owns one bit of the candidate set
``alive``. stage0 narrows it with the request context, needed names the
store features a survivor still reads, stage1 narrows it with them, and
walk serves per slot the best survivor whose checks hold (CHOICES).

On its own: decide(context, features, slots=None) -> {slot: (content, rule)},
with every store feature and model score in ``features`` by its text.
"""

from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.compiler.values import Values


# Candidates by bit: within a slot a lower bit ranks higher (priority, then source order).
#   bit  slot         priority  rule                      source
#     0  cart_upsell        20  warranty_for_electronics  rulesets/retail/cart.rules:3
#     1  cart_upsell        10  comeback_discount         rulesets/retail/cart.rules:8
#     2  cart_upsell         5  free_shipping_gap         rulesets/retail/cart.rules:13
#     3  hero               40  hero_by_model             rulesets/retail/home.rules:10
#     4  hero               30  vip_early_access          rulesets/retail/home.rules:15
#     5  hero               20  welcome_back              rulesets/retail/home.rules:20
#     6  hero               10  electronics_accessories   rulesets/retail/home.rules:26
#     7  hero               10  electronics_accessories   rulesets/retail/home.rules:26
#     8  hero                5  first_order               rulesets/retail/home.rules:32
#     9  sidebar            10  electronics_bundle        rulesets/retail/product.rules:3
#    10  sidebar            10  electronics_bundle        rulesets/retail/product.rules:3
#    11  sidebar             5  high_value_shipping       rulesets/retail/product.rules:8
#    12  sidebar             5  high_value_shipping       rulesets/retail/product.rules:8
#    13  sidebar             3  long_readers              rulesets/retail/product.rules:15
#
# Features by their names in this code.
#   name                                   feature                                       kind
#   context_category                       context.category                              context
#   context_page                           context.page                                  context
#   hero_test                              hero_test                                     experiment
#   context_cart_total                     context.cart_total                            context
#   context_device                         context.device                                context
#   since_purchase                         since("purchase")                             since
#   user_tier                              user.tier                                     profile
#   add_to_carts_electronics_1h            add_to_carts("Electronics", 1h)               count
#   add_to_carts_electronics_7d            add_to_carts("Electronics", 7d)               count
#   count_cart_abandoned_any_7d            count("cart_abandoned", "any", 7d)            count
#   count_impression_hero_accessories_24h  count("impression", "hero_accessories", 24h)  count
#   total_dwell_any_7d                     total("dwell", "any", 7d)                     total
#   total_purchase_any_30d                 total("purchase", "any", 30d)                 total
#   views_electronics_24h                  views("Electronics", 24h)                     count
#   views_7d                               views(7d)                                     count
#   clicks_electronics_7d                  clicks("Electronics", 7d)                     count
#   clicks_acc_42_30d                      clicks("acc-42", 30d)                         count
#   count_impression_acc_42_7d             count("impression", "acc-42", 7d)             count
#   purchases_electronics_30d              purchases("Electronics", 30d)                 count
#   since_purchase_electronics             since("purchase", "Electronics")              since
#   since_view_electronics                 since("view", "Electronics")                  since
#   views_electronics_7d                   views("Electronics", 7d)                      count
#   views_24h                              views(24h)                                    count
#   p_click                                p_click                                       model

ALL = 0b11_1111_1111_1111

# What each bit serves, then each slot's default: (content, rule).
CHOICES = (
    ('upsell_warranty', 'warranty_for_electronics'),  # bit 0
    ('upsell_comeback', 'comeback_discount'),  # bit 1
    ('upsell_shipping_gap', 'free_shipping_gap'),  # bit 2
    ('hero_accessories', 'hero_by_model'),  # bit 3
    ('hero_vip', 'vip_early_access'),  # bit 4
    ('hero_welcome_back', 'welcome_back'),  # bit 5
    ('hero_accessories', 'electronics_accessories'),  # bit 6
    ('hero_accessories', 'electronics_accessories'),  # bit 7
    ('hero_first_order', 'first_order'),  # bit 8
    ('sidebar_bundle', 'electronics_bundle'),  # bit 9
    ('sidebar_bundle', 'electronics_bundle'),  # bit 10
    ('sidebar_free_shipping', 'high_value_shipping'),  # bit 11
    ('sidebar_free_shipping', 'high_value_shipping'),  # bit 12
    ('sidebar_guides', 'long_readers'),  # bit 13
    ('upsell_bestsellers', None),  # cart_upsell: default
    ('hero_generic', None),  # hero: default
    ('sidebar_reviews', None),  # sidebar: default
)

# Each slot's candidate bits.
SLOTS = {
    'cart_upsell': 0b00_0000_0000_0111,
    'hero': 0b00_0001_1111_1000,
    'sidebar': 0b11_1110_0000_0000,
}

# The features the checks read, and the type a value must have to be known (see decide).
FEATURES = {
    'p_click': FeatureRef(FeatureKind.MODEL, 'p_click', name='p_click'),
}
VALUE_TYPES = {'p_click': 'number'}


def check_hero_by_model(V):
    # p_click > 0.5
    p_click = V['p_click']
    if p_click is None or not (p_click > 0.5):
        return False
    return True


def check_electronics_accessories(V):
    # p_click > 0.7
    p_click = V['p_click']
    if p_click is None or not (p_click > 0.7):
        return False
    return True


# Checks by candidate bit: what the tables left open for it.
CHECKS = {
    3: check_hero_by_model,
    6: check_electronics_accessories,
    7: check_electronics_accessories,
}


def stage0(context, arms):
    """Stage 0: the candidates the request context and the user's experiment arms leave."""
    alive = ALL
    # context.category == "Electronics"
    context_category = context.get('category')
    if type(context_category) is str:
        if context_category == 'Electronics':
            pass  # every candidate survives
        else:
            alive &= 0b11_1001_1111_1111
    else:
        alive &= 0b11_1001_1111_1111
    # context.page == "home"; context.page == "product"
    context_page = context.get('page')
    if type(context_page) is str:
        if context_page == 'home':
            alive &= 0b00_0001_1111_1111
        elif context_page == 'product':
            alive &= 0b11_1111_1110_1111
        else:
            alive &= 0b00_0001_1110_1111
    else:
        alive &= 0b00_0001_1110_1111
    # hero_test == "model"
    hero_test = arms.get('hero_test')
    if type(hero_test) is str:
        if hero_test == 'model':
            pass  # every candidate survives
        else:
            alive &= 0b11_1111_1111_0111
    else:
        alive &= 0b11_1111_1111_0111
    # context.cart_total >= 100; context.cart_total < 50; context.cart_total >= 35
    context_cart_total = context.get('cart_total')
    kind = type(context_cart_total)
    if (kind is int or kind is float) and context_cart_total == context_cart_total:
        if context_cart_total < 35:
            alive &= 0b11_1111_1111_1010
        elif context_cart_total < 50:
            alive &= 0b11_1111_1111_1110
        elif context_cart_total < 100:
            alive &= 0b11_1111_1111_1010
        else:
            alive &= 0b11_1111_1111_1011
    else:
        alive &= 0b11_1111_1111_1010
    return alive


def needed(alive):
    """The store features a surviving candidate still reads: the one fetch of stage 1."""
    out = []
    if alive & 0b00_0001_0010_0000:
        out.append('since("purchase")')
    if alive & 0b01_0000_1111_1000:
        out.append('user.tier')
    if alive & 0b00_0000_0000_0001:
        out.append('add_to_carts("Electronics", 1h)')
    if alive & 0b00_0100_1100_1000:
        out.append('add_to_carts("Electronics", 7d)')
    if alive & 0b00_0000_0000_0010:
        out.append('count("cart_abandoned", "any", 7d)')
    if alive & 0b00_0000_1100_0000:
        out.append('count("impression", "hero_accessories", 24h)')
    if alive & 0b10_0000_0000_0000:
        out.append('total("dwell", "any", 7d)')
    if alive & 0b00_1000_1100_1010:
        out.append('total("purchase", "any", 30d)')
    if alive & 0b00_0010_1100_1000:
        out.append('views("Electronics", 24h)')
    if alive & 0b00_0001_0000_0000:
        out.append('views(7d)')
    if alive & 0b00_0000_1100_1000:
        out.append('clicks("Electronics", 7d)')
    if alive & 0b00_0000_1100_1000:
        out.append('clicks("acc-42", 30d)')
    if alive & 0b00_0000_1100_1000:
        out.append('count("impression", "acc-42", 7d)')
    if alive & 0b00_0000_1100_1000:
        out.append('purchases("Electronics", 30d)')
    if alive & 0b00_0000_1100_1000:
        out.append('since("purchase", "Electronics")')
    if alive & 0b00_0000_1100_1000:
        out.append('since("view", "Electronics")')
    if alive & 0b00_0000_1100_1000:
        out.append('views("Electronics", 7d)')
    if alive & 0b00_0000_1100_1000:
        out.append('views(24h)')
    return out


def stage1(alive, fetched):
    """Stage 1: the candidates the store features, fetched in one round trip, leave."""
    # A feature no survivor reads keeps every surviving bit, so tables apply unconditionally.
    # since("purchase") > 30d; since("purchase") is missing
    since_purchase = fetched.get('since("purchase")')
    kind = type(since_purchase)
    if (kind is int or kind is float) and since_purchase == since_purchase:
        if since_purchase <= 2592000:
            alive &= 0b11_1110_1101_1111
        else:
            alive &= 0b11_1110_1111_1111
    else:
        alive &= 0b11_1111_1101_1111
    # user.tier in ["gold", "platinum"]; user.tier not in ["gold", "platinum"]
    user_tier = fetched.get('user.tier')
    if type(user_tier) is str:
        if user_tier in {'gold', 'platinum'}:
            alive &= 0b11_1111_1101_1111
        else:
            alive &= 0b10_1111_1110_1111
    else:
        alive &= 0b10_1111_1100_1111
    # add_to_carts("Electronics", 1h) > 0
    add_to_carts_electronics_1h = fetched.get('add_to_carts("Electronics", 1h)', 0)
    kind = type(add_to_carts_electronics_1h)
    if (kind is int or kind is float) and add_to_carts_electronics_1h == add_to_carts_electronics_1h:
        if add_to_carts_electronics_1h <= 0:
            alive &= 0b11_1111_1111_1110
    else:
        alive &= 0b11_1111_1111_1110
    # add_to_carts("Electronics", 7d) > 0
    add_to_carts_electronics_7d = fetched.get('add_to_carts("Electronics", 7d)', 0)
    kind = type(add_to_carts_electronics_7d)
    if (kind is int or kind is float) and add_to_carts_electronics_7d == add_to_carts_electronics_7d:
        if add_to_carts_electronics_7d <= 0:
            alive &= 0b11_1011_0111_1111
    else:
        alive &= 0b11_1011_0111_1111
    # count("cart_abandoned", "any", 7d) > 0
    count_cart_abandoned_any_7d = fetched.get('count("cart_abandoned", "any", 7d)', 0)
    kind = type(count_cart_abandoned_any_7d)
    if (kind is int or kind is float) and count_cart_abandoned_any_7d == count_cart_abandoned_any_7d:
        if count_cart_abandoned_any_7d <= 0:
            alive &= 0b11_1111_1111_1101
    else:
        alive &= 0b11_1111_1111_1101
    # count("impression", "hero_accessories", 24h) < 3
    count_impression_hero_accessories_24h = fetched.get('count("impression", "hero_accessories", 24h)', 0)
    kind = type(count_impression_hero_accessories_24h)
    if (kind is int or kind is float) and count_impression_hero_accessories_24h == count_impression_hero_accessories_24h:
        if count_impression_hero_accessories_24h < 3:
            pass  # every candidate survives
        else:
            alive &= 0b11_1111_0011_1111
    else:
        alive &= 0b11_1111_0011_1111
    # total("dwell", "any", 7d) >= 300
    total_dwell_any_7d = fetched.get('total("dwell", "any", 7d)', 0)
    kind = type(total_dwell_any_7d)
    if (kind is int or kind is float) and total_dwell_any_7d == total_dwell_any_7d:
        if total_dwell_any_7d < 300:
            alive &= 0b01_1111_1111_1111
    else:
        alive &= 0b01_1111_1111_1111
    # total("purchase", "any", 30d) < 500; total("purchase", "any", 30d) >= 500
    total_purchase_any_30d = fetched.get('total("purchase", "any", 30d)', 0)
    kind = type(total_purchase_any_30d)
    if (kind is int or kind is float) and total_purchase_any_30d == total_purchase_any_30d:
        if total_purchase_any_30d < 500:
            alive &= 0b11_0111_1111_1111
        else:
            alive &= 0b11_1111_1111_1101
    else:
        alive &= 0b11_0111_1111_1101
    # views("Electronics", 24h) > 2
    views_electronics_24h = fetched.get('views("Electronics", 24h)', 0)
    kind = type(views_electronics_24h)
    if (kind is int or kind is float) and views_electronics_24h == views_electronics_24h:
        if views_electronics_24h <= 2:
            alive &= 0b11_1101_1011_1111
    else:
        alive &= 0b11_1101_1011_1111
    # views(7d) >= 3
    views_7d = fetched.get('views(7d)', 0)
    kind = type(views_7d)
    if (kind is int or kind is float) and views_7d == views_7d:
        if views_7d < 3:
            alive &= 0b11_1110_1111_1111
    else:
        alive &= 0b11_1110_1111_1111
    return alive


def walk(alive, make_values, choices):
    """Stage 2: per slot, the best surviving candidate whose checks hold, else the default.

    Returns {slot: choices[index]}, where index is the winning bit or, for the
    default, the slot's entry after the bits in CHOICES: choices=CHOICES gives
    (content, rule). Also returns the values the checks read, which
    make_values() builds when the first check runs (None if none ran).
    """
    V = None
    # cart_upsell: bits 0-2; the default (upsell_bestsellers) is 14
    candidates = alive & 0b00_0000_0000_0111
    cart_upsell = (candidates & -candidates).bit_length() - 1 if candidates else 14
    # hero: bits 3-8, 3 with checks; the default (hero_generic) is 15
    candidates = alive & 0b00_0001_1111_1000
    hero = 15
    while candidates:
        lowest = candidates & -candidates
        bit = lowest.bit_length() - 1
        if lowest & 0b00_0000_1100_1000:
            if V is None:
                V = make_values()
            if not CHECKS[bit](V):
                candidates ^= lowest
                continue
        hero = bit
        break
    # sidebar: bits 9-13; the default (sidebar_reviews) is 16
    candidates = alive & 0b11_1110_0000_0000
    sidebar = (candidates & -candidates).bit_length() - 1 if candidates else 16
    return {'cart_upsell': choices[cart_upsell], 'hero': choices[hero], 'sidebar': choices[sidebar]}, V


def decide(context, features, slots=None):
    """One decision on supplied values: {slot: (content, rule)}; a default has rule None.

    ``features`` holds the store features and model scores by their text, e.g.
    ``{'user.tier': 'gold', 'p_click': 0.8}``; an absent count is 0, anything else
    absent is unknown. ``slots`` limits the decision to those slots.
    An experiment's arm is given in ``features`` by the experiment's name.
    """
    alive = stage0(context, features)
    if slots is not None:
        alive &= sum(SLOTS.get(slot, 0) for slot in set(slots))
    alive = stage1(alive, features)
    decisions, _ = walk(alive, lambda: Values(context, features, FEATURES, VALUE_TYPES), CHOICES)
    if slots is None:
        return decisions
    return {slot: decisions.get(slot, (None, None)) for slot in slots}
