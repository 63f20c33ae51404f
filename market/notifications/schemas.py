"""Request and response bodies of the inbox and webhook routes."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from market.core.types import JsonBool


class NotificationRead(BaseModel):
    id: str = Field(description="ntf_…")
    event: str
    subject: str = Field(description="what it is about: ord_…, ast_…, lst_…, dsp_…, alr_…, acct_…, whk_…")
    created_at: datetime
    read_at: datetime | None = None
    data: dict[str, Any]


class MarkRead(BaseModel):
    ids: list[str] | None = Field(default=None, max_length=500)
    all: JsonBool | None = None

    @model_validator(mode="after")
    def _one(self) -> "MarkRead":
        if (self.ids is None) == (not self.all):
            raise ValueError('give {"ids": [...]} or {"all": true}')
        return self


class Marked(BaseModel):
    marked: int


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=100)


class WebhookRead(BaseModel):
    id: str = Field(description="whk_…")
    url: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="whsec_…: shown only here; verifies every delivery's webhook-signature")


class DeliveryRead(BaseModel):
    event_id: str = Field(description="evt_…, the webhook-id header")
    event: str
    attempt: int
    attempted_at: datetime
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = Field(default=None, description="the next retry, if one is due")
    status: str = Field(description="the message's status now: pending, delivered or failed")


class PingResult(BaseModel):
    event_id: str
    delivered: bool
    status_code: int | None = None
    error: str | None = None
