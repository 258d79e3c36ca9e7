// Package sms renders the texts parents receive and sends them through SMS
// providers: console, Solapi, NHN Cloud and a generic webhook, each speaking
// the provider's real HTTP API.
//
// The package owns two things: the wording and length rules of a text
// (Render, EUCKRLen) and one attempt at handing a text to a provider
// (Provider.Send). It never retries, never sleeps and keeps no queue: the
// bridge's durable queue owns retries and backoff, and asks IsPermanent
// whether a failure is worth another attempt.
//
// # Failures
//
// Every failed Send returns an *Error. Permanent errors (a rejected number,
// an unregistered sender number, bad credentials: most 4xx answers) will
// fail the same way again, so the queue should give up and tell staff.
// Everything else (timeouts, connection errors, 5xx, an answer that is not
// what the provider documents) is worth retrying with backoff.
//
// # Duplicates
//
// Message.Key is the queue's idempotency key. The queue guarantees at most
// one successful Send per key, but a Send whose answer is lost (a timeout
// after the provider accepted the text, a connection cut mid-answer) is
// reported as retryable, and the retry may text the parent twice. Only the
// webhook provider carries the key to the other side as an idempotency key
// (the Idempotency-Key header), where the receiver can drop the duplicate.
// Solapi's v4 send API documents no idempotency key, and NHN Cloud's SMS
// v3.0 API documents none for SMS either: with those two providers a lost
// answer can still mean a duplicate text. See each constructor for details.
//
// # Provider documentation
//
//   - Solapi: https://developers.solapi.dev/references/authentication/api-key
//     and https://docs.solapi.com/api-reference/messages/sendsimplemessage
//   - NHN Cloud SMS v3.0: https://docs.nhncloud.com/ko/Notification/SMS/ko/api-guide/
//     and https://docs.nhncloud.com/en/Notification/SMS/en/error-code/
package sms
