"""Programme topics: the list of the province plan for commune radio, plus "other".

The ids travel in schedule documents, play logs and reports; the labels are what people read. Alerts always
count as `emergency`; a schedule written before topics existed counts as `other`.
"""

from __future__ import annotations

from typing import Literal

Category = Literal[
    "policy-law", "direction", "local-affairs", "science-farming", "market", "security", "emergency",
    "exemplary", "rebuttal", "culture", "other",
]

# id -> (Vietnamese, English), in the plan's order.
LABELS: dict[str, tuple[str, str]] = {
    "policy-law": ("Chính sách, pháp luật", "Policy and law"),
    "direction": ("Chỉ đạo, điều hành", "Direction of the local government"),
    "local-affairs": ("Kinh tế - xã hội địa phương", "Local socio-economic news"),
    "science-farming": ("Khoa học kỹ thuật, khuyến nông", "Science, technology and farming"),
    "market": ("Thị trường, nông sản", "Markets and local produce"),
    "security": ("An ninh trật tự", "Security and order"),
    "emergency": ("Sự cố, khẩn cấp", "Incidents and emergencies"),
    "exemplary": ("Gương điển hình", "Exemplary people"),
    "rebuttal": ("Phản bác thông tin sai trái", "Rebutting false information"),
    "culture": ("Văn hóa, văn nghệ", "Culture and the arts"),
    "other": ("Khác", "Other"),
}
CATEGORIES: tuple[str, ...] = tuple(LABELS)
DEFAULT_CATEGORY = "other"
ALERT_CATEGORY = "emergency"


def label(category: str, lang: str = "vi") -> str:
    """The topic's name in `lang` ("vi" or "en"); an unknown id (an old or foreign row) reads as "other"."""
    vi, en = LABELS.get(category, LABELS[DEFAULT_CATEGORY])
    return en if lang == "en" else vi
