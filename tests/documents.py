"""GraphQL documents the tests send, written as a client would write them."""

MEMBER_FIELDS = """
  id externalId displayName joinedAt tierValidUntil growthValue referralCode
  tier { code name rank pointsMultiplier }
  nextTier { tier { code } conditions { description current target met } }
  points { balance }
"""

ENROLL = f"""
mutation($input: EnrollMemberInput!) {{
  enrollMember(input: $input) {{
    duplicate
    member {{ {MEMBER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

RECORD_ORDER = f"""
mutation($input: RecordOrderInput!) {{
  recordOrder(input: $input) {{
    duplicate
    order {{ id externalId amount {{ amount currency }} paidAt pointsEarned refundedAmount {{ amount }} }}
    member {{ {MEMBER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

REFUND_ORDER = f"""
mutation($input: RefundOrderInput!) {{
  refundOrder(input: $input) {{
    duplicate
    order {{ externalId pointsEarned refundedAmount {{ amount }} }}
    member {{ {MEMBER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

ADJUST_POINTS = f"""
mutation($input: AdjustPointsInput!) {{
  adjustPoints(input: $input) {{
    duplicate
    member {{ {MEMBER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

EVALUATE_TIERS = """
mutation($input: EvaluateTiersInput) {
  evaluateTiers(input: $input) { evaluated upgraded downgraded userErrors { field message code } }
}"""

MEMBER_BY_EXTERNAL_ID = f"""
query($externalId: String!) {{
  member(externalId: $externalId) {{
    {MEMBER_FIELDS}
    points {{ balance ledger(first: 100) {{ totalCount edges {{ node {{ kind amount balanceAfter reason shortfall }} }} }} }}
    orders(first: 100) {{ totalCount edges {{ node {{ externalId pointsEarned refundedAmount {{ amount }} }} }} }}
  }}
}}"""

VIEWER = f"""{{ viewer {{ {MEMBER_FIELDS} }} }}"""
