// Unit tests of the verdict policy built from Reply structs (no parser): one test per row family
// of the decision table in docs/verdicts.md, the DNS/syntax/failure outcomes, the full catch-all
// combination table, the phrase matcher, and that the docs list every phrase of the table.
#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "verdict/classify.hpp"
#include "verdict/text_rules.hpp"

namespace mxp::verdict {
namespace {

using smtp::EnhancedCode;
using smtp::Failure;
using smtp::Outcome;
using smtp::Reply;
using smtp::Stage;

EnhancedCode enh(int cls, int subject, int detail) {
  EnhancedCode e;
  e.present = true;
  e.cls = static_cast<uint8_t>(cls);
  e.subject = static_cast<uint16_t>(subject);
  e.detail = static_cast<uint16_t>(detail);
  return e;
}

Outcome reply(Stage stage, int code, EnhancedCode e, std::initializer_list<const char*> lines) {
  Outcome o;
  o.stage = stage;
  o.reply.code = code;
  o.reply.enhanced = e;
  for (const char* l : lines)
    o.reply.lines.emplace_back(l);
  return o;
}
Outcome rcpt(int code, EnhancedCode e, std::initializer_list<const char*> lines) {
  return reply(Stage::RcptTo, code, e, lines);
}
Outcome rcpt(int code, std::initializer_list<const char*> lines) {
  return reply(Stage::RcptTo, code, EnhancedCode{}, lines);
}
Outcome failure(Stage stage, Failure f) {
  Outcome o;
  o.stage = stage;
  o.failure = f;
  return o;
}

Classification run(const Outcome& o) {
  return classify(o);
}

::testing::AssertionResult IsVR(const Classification& c, Verdict v, Reason r) {
  if (c.verdict == v && c.reason == r) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << to_string(c.verdict) << "/" << to_string(c.reason) << ", want "
         << to_string(v) << "/" << to_string(r);
}
#define EXPECT_VR(c, v, r) EXPECT_TRUE(IsVR((c), Verdict::v, Reason::r))

// ---- RCPT: positive replies ----

TEST(ClassifyRcpt, AcceptedAndForwarded) {
  auto c = run(rcpt(250, enh(2, 1, 5), {"Ok"}));
  EXPECT_VR(c, Deliverable, Accepted);
  EXPECT_EQ(c.scope, Scope::Recipient);
  EXPECT_FALSE(c.retry_later || c.source_blocked || c.back_off || c.session_fatal);
  EXPECT_VR(run(rcpt(251, {"User not local; will forward to <a@b.example>"})), Deliverable,
            Accepted);
}

TEST(ClassifyRcpt, CannotVerify252IsAcceptAllRisk) {
  auto c = run(rcpt(252, enh(2, 1, 5), {"Cannot VRFY user, but will accept message"}));
  EXPECT_VR(c, Risky, CatchAll);
}

TEST(ClassifyRcpt, UnexpectedPositiveOrIntermediateRepliesAreOutOfStep) {
  for (int code : {220, 235, 354}) {
    auto c = run(rcpt(code, {"whatever"}));
    EXPECT_VR(c, Unknown, ProtocolError) << code;
    EXPECT_TRUE(c.session_fatal) << code;
  }
  auto bad = run(rcpt(199, {"x"}));
  EXPECT_VR(bad, Unknown, ProtocolError);
  EXPECT_TRUE(bad.session_fatal);
  EXPECT_VR(run(rcpt(600, {"x"})), Unknown, ProtocolError);
}

// ---- RCPT: enhanced code decides ----

TEST(ClassifyRcpt, MailboxEnhancedCodesWithClass5AreUndeliverable) {
  for (int detail : {0, 1, 6, 10}) {
    auto c = run(rcpt(550, enh(5, 1, detail), {"rejected"}));
    EXPECT_VR(c, Undeliverable, MailboxNotFound) << detail;
    EXPECT_EQ(c.scope, Scope::Recipient);
    EXPECT_FALSE(c.retry_later);
  }
  EXPECT_VR(run(rcpt(550, enh(5, 2, 1), {"rejected"})), Undeliverable, MailboxDisabled);
  EXPECT_VR(run(rcpt(501, enh(5, 1, 3), {"Bad recipient address syntax"})), Undeliverable,
            InvalidSyntax);
}

TEST(ClassifyRcpt, MailboxEnhancedCodeBeatsAWeakText) {
  // 5.2.1 says disabled, the text says unknown: the code is clear, so it wins.
  EXPECT_VR(run(rcpt(550, enh(5, 2, 1), {"<X@PRODIGY.NET>... Addressee unknown"})), Undeliverable,
            MailboxDisabled);
  // 5.1.1 with a relay phrase in a proxied diagnostic: still the mailbox.
  EXPECT_VR(run(rcpt(550, enh(5, 1, 1), {"undeliverable address: relay access denied"})),
            Undeliverable, MailboxNotFound);
}

TEST(ClassifyRcpt, TransientMailboxCodesAreNeverUndeliverable) {
  for (auto e : {enh(4, 1, 1), enh(4, 2, 1), enh(4, 1, 3)}) {
    auto c = run(rcpt(450, e, {"Recipient address rejected: User unknown"}));
    EXPECT_VR(c, Unknown, TemporaryFailure);
    EXPECT_TRUE(c.retry_later);
  }
}

TEST(ClassifyRcpt, FullMailboxIsRiskyEitherClassAndFinal) {
  for (int code : {452, 552}) {
    auto c = run(rcpt(code, enh(code / 100, 2, 2), {"Mailbox full"}));
    EXPECT_VR(c, Risky, MailboxFull) << code;
    EXPECT_FALSE(c.retry_later);
  }
}

TEST(ClassifyRcpt, BadDestinationSystemMeansNotResponsible) {
  auto c = run(rcpt(550, enh(5, 1, 2), {"Host unknown"}));
  EXPECT_VR(c, Unknown, Blocked);
  EXPECT_EQ(c.scope, Scope::Domain);
  EXPECT_FALSE(c.source_blocked);
}

TEST(ClassifyRcpt, SenderCodesAtRcptBlameOurSender) {
  for (int detail : {7, 8}) {
    auto c = run(rcpt(553, enh(5, 1, detail), {"rejected"}));
    EXPECT_VR(c, Unknown, SenderRefused);
    EXPECT_TRUE(c.sender_refused);
    EXPECT_FALSE(c.source_blocked);  // another sender, not another IP
    EXPECT_EQ(c.scope, Scope::Transaction);
  }
}

TEST(ClassifyRcpt, OutlookRegionsAndRecipientLimitsAreLimits) {
  for (const char* text :
       {"Recipients belong to multiple regions ATTR38", "Too many recipients (AS780090)"}) {
    auto c = run(rcpt(452, enh(4, 5, 3), {text}));
    EXPECT_VR(c, Unknown, RateLimited);
    EXPECT_TRUE(c.recipient_limit);
    EXPECT_TRUE(c.retry_later);
    EXPECT_FALSE(c.sender_refused);
  }
}

TEST(RefusesSender, OnlyRepliesAboutOurSenderAtMailOrRcpt) {
  const auto r = [](int code, smtp::EnhancedCode e, const char* text) {
    smtp::Reply x;
    x.code = code;
    x.enhanced = e;
    x.lines = {text};
    return x;
  };
  EXPECT_TRUE(
      refuses_sender(r(550, enh(5, 7, 1), "<>: null sender not accepted"), Stage::MailFrom, ""));
  EXPECT_TRUE(refuses_sender(r(554, enh(5, 7, 1), "<>: Sender address rejected: Access denied"),
                             Stage::RcptTo, ""));
  EXPECT_TRUE(refuses_sender(r(550, enh(5, 7, 1), "Access denied"), Stage::MailFrom, ""));
  EXPECT_FALSE(refuses_sender(r(550, enh(5, 7, 1), "Access denied"), Stage::RcptTo, ""));
  EXPECT_FALSE(refuses_sender(r(550, enh(5, 1, 1), "User unknown"), Stage::RcptTo, ""));
  EXPECT_FALSE(refuses_sender(r(554, enh(5, 7, 1),
                                "Client host [192.0.2.1] blocked using "
                                "zen.spamhaus.org"),
                              Stage::RcptTo, ""));
  EXPECT_FALSE(refuses_sender(r(451, enh(4, 7, 1), "Greylisted"), Stage::MailFrom, ""));
  EXPECT_FALSE(refuses_sender(r(502, {}, "Command not implemented"), Stage::MailFrom, ""));
  EXPECT_FALSE(refuses_sender(r(554, enh(5, 7, 1), "Sender address rejected"), Stage::Ehlo, ""));
}

TEST(ClassifyRcpt, PolicyCodes) {
  // 5.7.x: blocked, never undeliverable, even when the text claims the user is unknown
  // (Postfix access maps print 5.7.1 whatever the admin wrote).
  auto c = run(rcpt(550, enh(5, 7, 1), {"<a@b>: Recipient address rejected: User unknown"}));
  EXPECT_VR(c, Unknown, Blocked);
  EXPECT_FALSE(c.source_blocked);
  EXPECT_EQ(c.scope, Scope::Recipient);
  EXPECT_FALSE(c.retry_later);
  // Relay refusals are about the domain.
  EXPECT_EQ(run(rcpt(554, enh(5, 7, 1), {"<a@b>: Relay access denied"})).scope, Scope::Domain);
  // 450/451 4.7.1 without other words: greylisting.
  auto g = run(rcpt(451, enh(4, 7, 1), {"Please come back later"}));
  EXPECT_VR(g, Unknown, Greylisted);
  EXPECT_TRUE(g.retry_later);
  // ... but 4.7.1 with a policy phrase is a (temporary) policy block.
  auto p = run(rcpt(450, enh(4, 7, 1), {"<a@b>: Recipient address rejected: Access denied"}));
  EXPECT_VR(p, Unknown, Blocked);
  EXPECT_TRUE(p.retry_later);
  auto r = run(rcpt(454, enh(4, 7, 1), {"<a@b>: Relay access denied"}));
  EXPECT_VR(r, Unknown, Blocked);
  EXPECT_EQ(r.scope, Scope::Domain);
  // Other 4.7.x: a policy deferral, back off.
  auto d = run(rcpt(451, enh(4, 7, 500), {"Server busy. Please try again later"}));
  EXPECT_VR(d, Unknown, RateLimited);
  EXPECT_TRUE(d.back_off);
  EXPECT_TRUE(d.retry_later);
}

TEST(ClassifyRcpt, ProtocolAndSystemCodes) {
  auto p = run(rcpt(501, enh(5, 5, 4), {"Syntax error in parameters"}));
  EXPECT_VR(p, Unknown, ProtocolError);
  EXPECT_EQ(p.scope, Scope::Session);
  auto s = run(rcpt(550, enh(5, 3, 2), {"Service currently unavailable"}));
  EXPECT_VR(s, Unknown, TemporaryFailure);
  EXPECT_FALSE(s.retry_later);
  auto t = run(rcpt(452, enh(4, 3, 1), {"Insufficient system storage"}));
  EXPECT_VR(t, Unknown, TemporaryFailure);
  EXPECT_TRUE(t.retry_later);
}

// ---- RCPT: limits and strong texts ----

TEST(ClassifyRcpt, TooManyRecipientsIsALimitNotABadMailbox) {
  for (auto o :
       {rcpt(452, enh(4, 5, 3), {"Too many recipients"}), rcpt(452, {"too many recipients"}),
        rcpt(552, enh(5, 5, 3), {"Too many recipients"})}) {
    auto c = run(o);
    EXPECT_VR(c, Unknown, RateLimited);
    EXPECT_TRUE(c.recipient_limit);
    EXPECT_TRUE(c.retry_later);
    EXPECT_FALSE(c.back_off);
    EXPECT_EQ(c.scope, Scope::Transaction);
  }
}

TEST(ClassifyRcpt, StrongTextBeatsAnyEnhancedCode) {
  // Stalwart's greylisting answers 4.2.2 (mailbox full) with "Greylisted".
  EXPECT_VR(run(rcpt(422, enh(4, 2, 2), {"Greylisted, please try again in a few moments."})),
            Unknown, Greylisted);
  // Postfix reports sender rejections at RCPT, with a 5.1.x code and "User unknown" in it.
  auto c = run(rcpt(550, enh(5, 1, 0),
                    {"<me@example.net>: Sender address rejected: User unknown in local "
                     "recipient table"}));
  EXPECT_VR(c, Unknown, SenderRefused);
  EXPECT_TRUE(c.sender_refused);
  // A Spamhaus rejection with a mailbox code is still about us.
  EXPECT_VR(run(rcpt(550, enh(5, 1, 1), {"blocked using zen.spamhaus.org"})), Unknown, Blocked);
}

TEST(ClassifyRcpt, RateLimitTexts) {
  auto server = run(rcpt(450, enh(4, 7, 1), {"Error: too many recipients from [192.0.2.7]"}));
  EXPECT_VR(server, Unknown, RateLimited);
  EXPECT_TRUE(server.back_off);
  EXPECT_FALSE(server.recipient_limit);
  auto mailbox = run(rcpt(450, enh(4, 2, 1),
                          {"The user you are trying to contact is receiving",
                           "mail at a rate that prevents delivery"}));
  EXPECT_VR(mailbox, Unknown, RateLimited);
  EXPECT_FALSE(mailbox.back_off);
  EXPECT_EQ(mailbox.scope, Scope::Recipient);
  EXPECT_TRUE(mailbox.retry_later);
}

TEST(ClassifyRcpt, TlsRequired) {
  // The session could not give the server TLS (starttls = never, or STARTTLS refused): the
  // mailbox was not judged. Never undeliverable, even though the code is 5xx.
  auto c = run(rcpt(530, enh(5, 7, 0), {"Must issue a STARTTLS command first"}));
  EXPECT_VR(c, Unknown, TlsRequired);
  EXPECT_EQ(c.scope, Scope::Session);
  auto m = run(reply(Stage::MailFrom, 530, enh(5, 7, 0), {"Must issue a STARTTLS command first"}));
  EXPECT_VR(m, Unknown, TlsRequired);
  EXPECT_FALSE(m.source_blocked);
}

TEST(ClassifyRcpt, TlsPhraseInAnAddressIsNotATlsDemand) {
  auto c =
      run(rcpt(550, enh(5, 1, 1),
               {"<nobody1@starttls-required.test>: Recipient address rejected: User unknown"}));
  EXPECT_VR(c, Undeliverable, MailboxNotFound);
  EXPECT_VR(run(rcpt(550, {"<x@starttls.example>: user unknown"})), Undeliverable, MailboxNotFound);
  // With an X.7.x code or 530 the phrase counts.
  EXPECT_VR(run(rcpt(451, enh(4, 7, 1), {"TLS required for this recipient"})), Unknown,
            TlsRequired);
  EXPECT_VR(run(rcpt(530, {"Must issue a STARTTLS command first"})), Unknown, TlsRequired);
}

TEST(ClassifyFailure, TlsFailures) {
  for (auto f : {Failure::TlsUnavailable, Failure::TlsFailed}) {
    auto c = run(failure(Stage::StartTls, f));
    EXPECT_VR(c, Unknown, TlsRequired);
    EXPECT_EQ(c.scope, Scope::Session);
    EXPECT_TRUE(c.session_fatal);
    EXPECT_FALSE(c.retry_later);  // the same server gives the same answer
    EXPECT_FALSE(c.back_off);
  }
}

TEST(ClassifyRcpt, Code421ClosesTheSession) {
  auto c = run(rcpt(421, enh(4, 4, 2), {"mx.example.com closing connection"}));
  EXPECT_VR(c, Unknown, RateLimited);
  EXPECT_TRUE(c.session_fatal);
  EXPECT_TRUE(c.back_off);
  EXPECT_TRUE(c.retry_later);
  EXPECT_EQ(c.scope, Scope::Session);
  // With a blocklist text it is a block, and still fatal.
  auto b = run(rcpt(421, enh(4, 7, 0), {"[TSS04] Messages from 192.0.2.7 temporarily deferred"}));
  EXPECT_VR(b, Unknown, Blocked);
  EXPECT_TRUE(b.source_blocked && b.session_fatal && b.retry_later);
}

// ---- RCPT: weak texts (no or generic enhanced code) ----

TEST(ClassifyRcpt, GenericCodesLetTheTextDecide) {
  EXPECT_VR(run(rcpt(550, enh(5, 5, 0), {"Requested action not taken: mailbox unavailable"})),
            Undeliverable, MailboxNotFound);
  EXPECT_VR(run(rcpt(550, enh(5, 0, 0), {"Account disabled"})), Undeliverable, MailboxDisabled);
  EXPECT_VR(run(rcpt(554, enh(5, 0, 0), {"This account is over quota"})), Risky, MailboxFull);
  EXPECT_VR(
      run(rcpt(550, enh(5, 4, 1), {"Recipient address rejected: Access denied. AS(201806281)"})),
      Undeliverable, MailboxNotFound);
  EXPECT_VR(run(rcpt(550, enh(5, 4, 1), {"Recipient address rejected: Access denied"})), Unknown,
            Blocked);
}

TEST(ClassifyRcpt, WeakTextsWithoutEnhancedCode) {
  EXPECT_VR(run(rcpt(554, {"delivery error: dd This user doesn't have a yahoo.com account"})),
            Undeliverable, MailboxNotFound);
  EXPECT_VR(run(rcpt(552, {"1 Requested mail action aborted, mailbox not found"})), Undeliverable,
            MailboxNotFound);
  EXPECT_VR(run(rcpt(550, {"user has too many messages on the server"})), Risky, MailboxFull);
  auto relay =
      run(rcpt(553, {"sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"}));
  EXPECT_VR(relay, Unknown, Blocked);
  EXPECT_EQ(relay.scope, Scope::Domain);
  EXPECT_VR(run(rcpt(550, {"Envelope blocked - User Entry"})), Unknown, Blocked);
  // A 4xx naming a missing mailbox is still only a 4xx.
  auto soft = run(rcpt(450, {"<a@b>: User unknown in local recipient table"}));
  EXPECT_VR(soft, Unknown, TemporaryFailure);
  EXPECT_TRUE(soft.retry_later);
  EXPECT_VR(run(rcpt(450, {"Account inactive"})), Unknown, TemporaryFailure);
  EXPECT_VR(run(rcpt(452, {"Mailbox is full"})), Risky, MailboxFull);
}

TEST(ClassifyRcpt, RetryLaterTexts) {
  EXPECT_VR(run(rcpt(451, {"Temporary failure, please try again later."})), Unknown, Greylisted);
  EXPECT_VR(run(rcpt(450, enh(4, 2, 0), {"Please retry later"})), Unknown, Greylisted);
  EXPECT_VR(run(rcpt(452, {"please try again later"})), Unknown, TemporaryFailure);
  auto perm = run(rcpt(550, {"try again later"}));
  EXPECT_VR(perm, Unknown, TemporaryFailure);
  EXPECT_FALSE(perm.retry_later);
}

// ---- RCPT: the bare reply code ----

TEST(ClassifyRcpt, BareCodes) {
  for (int code : {550, 551, 553})
    EXPECT_VR(run(rcpt(code, {"<a@b.example>"})), Undeliverable, MailboxNotFound) << code;
  EXPECT_VR(run(rcpt(552, {""})), Risky, MailboxFull);
  auto b = run(rcpt(554, {"Transaction failed"}));
  EXPECT_VR(b, Unknown, Blocked);
  EXPECT_FALSE(b.source_blocked);
  auto n = run(rcpt(556, {"Domain does not accept mail"}));  // RFC 7504
  EXPECT_VR(n, Undeliverable, NullMx);
  EXPECT_EQ(n.scope, Scope::Domain);
  for (int code : {500, 501, 502, 503, 504, 555}) {
    auto c = run(rcpt(code, {"Error"}));
    EXPECT_VR(c, Unknown, ProtocolError) << code;
    EXPECT_EQ(c.scope, Scope::Session);
  }
  for (int code : {450, 451, 452, 455}) {
    auto c = run(rcpt(code, {"Requested action aborted"}));
    EXPECT_VR(c, Unknown, TemporaryFailure) << code;
    EXPECT_TRUE(c.retry_later);
    EXPECT_FALSE(c.session_fatal);
  }
  EXPECT_VR(run(rcpt(599, {"?"})), Unknown, ProtocolError);
  // No text at all.
  Outcome empty = rcpt(550, {});
  EXPECT_VR(run(empty), Undeliverable, MailboxNotFound);
}

// ---- other stages ----

TEST(ClassifyStages, MailFrom) {
  auto refused = run(reply(Stage::MailFrom, 550, enh(5, 7, 1), {"Sender denied"}));
  EXPECT_VR(refused, Unknown, Blocked);
  EXPECT_TRUE(refused.source_blocked);
  EXPECT_FALSE(refused.session_fatal);
  // Even a 5.1.1 at MAIL FROM is about our sender, never the recipient's mailbox.
  auto sender = run(reply(Stage::MailFrom, 550, enh(5, 1, 1), {"User unknown"}));
  EXPECT_VR(sender, Unknown, Blocked);
  EXPECT_TRUE(sender.source_blocked);
  EXPECT_TRUE(sender.sender_refused);  // the next sender first, then another source
  auto null = run(reply(Stage::MailFrom, 550, enh(5, 7, 1), {"<>: null sender not accepted"}));
  EXPECT_VR(null, Unknown, SenderRefused);
  EXPECT_TRUE(null.sender_refused);
  EXPECT_FALSE(null.source_blocked);
  auto syntax = run(reply(Stage::MailFrom, 501, enh(5, 5, 4), {"Syntax error"}));
  EXPECT_VR(syntax, Unknown, ProtocolError);
  EXPECT_VR(run(reply(Stage::MailFrom, 502, {}, {"Command not implemented"})), Unknown,
            ProtocolError);
  EXPECT_VR(run(reply(Stage::MailFrom, 553, {}, {"Bounce me"})), Unknown, Blocked);
  auto grey = run(reply(Stage::MailFrom, 451, enh(4, 7, 1), {"Greylisting in action"}));
  EXPECT_VR(grey, Unknown, Greylisted);
  EXPECT_EQ(grey.scope, Scope::Transaction);
  EXPECT_VR(run(reply(Stage::MailFrom, 451, enh(4, 7, 1), {"Please retry"})), Unknown, Greylisted);
  EXPECT_VR(run(reply(Stage::MailFrom, 450, {}, {"Please try again later"})), Unknown, Greylisted);
  auto defer = run(reply(Stage::MailFrom, 451, enh(4, 7, 0), {"Deferred"}));
  EXPECT_VR(defer, Unknown, RateLimited);
  EXPECT_TRUE(defer.back_off);
  auto soft_sender = run(reply(Stage::MailFrom, 450, enh(4, 1, 8), {"Domain not found"}));
  EXPECT_VR(soft_sender, Unknown, SenderRefused);
  EXPECT_TRUE(soft_sender.sender_refused && soft_sender.retry_later);
  EXPECT_FALSE(soft_sender.source_blocked);
  EXPECT_VR(run(reply(Stage::MailFrom, 451, enh(4, 3, 0), {"Local error"})), Unknown,
            TemporaryFailure);
  auto shut = run(reply(Stage::MailFrom, 421, {}, {"Service not available"}));
  EXPECT_VR(shut, Unknown, RateLimited);
  EXPECT_TRUE(shut.session_fatal);
  EXPECT_VR(run(reply(Stage::MailFrom, 250, {}, {"Ok"})), Unknown, ProtocolError);
}

TEST(ClassifyStages, BannerAndHello) {
  auto no_service = run(reply(Stage::Banner, 554, {}, {"No SMTP service here"}));
  EXPECT_VR(no_service, Unknown, Blocked);
  EXPECT_TRUE(no_service.source_blocked);
  EXPECT_TRUE(no_service.session_fatal);
  EXPECT_EQ(no_service.scope, Scope::Session);
  auto nomail = run(reply(Stage::Banner, 521, {}, {"Host does not accept mail"}));  // RFC 7504
  EXPECT_VR(nomail, Unknown, Blocked);
  EXPECT_FALSE(nomail.source_blocked);
  auto busy = run(reply(Stage::Banner, 421, {}, {"Service not available"}));
  EXPECT_VR(busy, Unknown, RateLimited);
  EXPECT_TRUE(busy.back_off && busy.session_fatal && busy.retry_later);
  auto tmp = run(reply(Stage::Banner, 450, {}, {"Try later"}));
  EXPECT_VR(tmp, Unknown, TemporaryFailure);
  EXPECT_TRUE(tmp.session_fatal && tmp.retry_later);
  EXPECT_VR(run(reply(Stage::Connect, 554, {}, {"go away"})), Unknown, Blocked);
  auto helo = run(reply(Stage::Ehlo, 550, enh(5, 7, 1), {"Access denied"}));
  EXPECT_VR(helo, Unknown, Blocked);
  EXPECT_TRUE(helo.source_blocked);
  auto helo2 = run(reply(Stage::Helo, 502, enh(5, 5, 2), {"Error: command not recognized"}));
  EXPECT_VR(helo2, Unknown, ProtocolError);
  EXPECT_TRUE(helo2.session_fatal);
  EXPECT_VR(run(reply(Stage::Ehlo, 550, {}, {"Client host rejected: cannot find your hostname"})),
            Unknown, Blocked);
  EXPECT_VR(run(reply(Stage::Rset, 500, {}, {"?"})), Unknown, ProtocolError);
  EXPECT_VR(run(reply(Stage::Quit, 221, {}, {"Bye"})), Unknown, ProtocolError);
  auto grey = run(reply(Stage::Banner, 451, {}, {"You are greylisted for 20 minutes"}));
  EXPECT_VR(grey, Unknown, Greylisted);
  EXPECT_TRUE(grey.retry_later && grey.session_fatal);
}

// ---- failures, DNS, syntax ----

TEST(ClassifyFailures, EachFailure) {
  auto cf = run(failure(Stage::Connect, Failure::ConnectFailed));
  EXPECT_VR(cf, Unknown, ConnectionFailed);
  EXPECT_TRUE(cf.retry_later && cf.session_fatal);
  EXPECT_FALSE(cf.back_off);
  auto ct = run(failure(Stage::Connect, Failure::Timeout));
  EXPECT_VR(ct, Unknown, ConnectionFailed);
  EXPECT_TRUE(ct.retry_later);
  for (Stage s : {Stage::Banner, Stage::Ehlo, Stage::MailFrom, Stage::RcptTo}) {
    auto t = run(failure(s, Failure::Timeout));
    EXPECT_VR(t, Unknown, Timeout);
    EXPECT_TRUE(t.retry_later && t.back_off && t.session_fatal);
    EXPECT_EQ(t.scope, Scope::Session);
  }
  auto closed = run(failure(Stage::RcptTo, Failure::Closed));
  EXPECT_VR(closed, Unknown, ProtocolError);
  EXPECT_TRUE(closed.retry_later && closed.back_off && closed.session_fatal);
  auto garbage = run(failure(Stage::Banner, Failure::ProtocolError));
  EXPECT_VR(garbage, Unknown, ProtocolError);
  EXPECT_FALSE(garbage.retry_later);
  EXPECT_TRUE(garbage.session_fatal);
  auto local_rcpt = run(failure(Stage::RcptTo, Failure::LocalError));
  EXPECT_VR(local_rcpt, Undeliverable, InvalidSyntax);
  EXPECT_EQ(local_rcpt.scope, Scope::Recipient);
  EXPECT_FALSE(local_rcpt.session_fatal);
  EXPECT_VR(run(failure(Stage::MailFrom, Failure::LocalError)), Unknown, ProtocolError);
}

TEST(ClassifyDns, EachStatus) {
  struct Row {
    DnsStatus s;
    Verdict v;
    Reason r;
    bool retry;
  };
  const Row rows[] = {
      {DnsStatus::NxDomain, Verdict::Undeliverable, Reason::NoSuchDomain, false},
      {DnsStatus::NullMx, Verdict::Undeliverable, Reason::NullMx, false},
      {DnsStatus::NoMailServer, Verdict::Undeliverable, Reason::NoMailServer, false},
      {DnsStatus::ServFail, Verdict::Unknown, Reason::DnsError, true},
      {DnsStatus::Refused, Verdict::Unknown, Reason::DnsError, true},
      {DnsStatus::Timeout, Verdict::Unknown, Reason::DnsError, true},
  };
  for (const auto& row : rows) {
    auto c = classify_dns(row.s);
    EXPECT_EQ(c.verdict, row.v) << to_string(row.s);
    EXPECT_EQ(c.reason, row.r) << to_string(row.s);
    EXPECT_EQ(c.retry_later, row.retry) << to_string(row.s);
    EXPECT_EQ(c.scope, Scope::Domain);
    EXPECT_FALSE(c.session_fatal || c.source_blocked || c.back_off);
  }
}

TEST(ClassifySyntax, InvalidSyntax) {
  auto c = classify_syntax_error();
  EXPECT_VR(c, Undeliverable, InvalidSyntax);
  EXPECT_EQ(c.scope, Scope::Recipient);
}

// ---- catch-all ----

Classification cls(Verdict v, Reason r) {
  Classification c;
  c.verdict = v;
  c.reason = r;
  return c;
}

TEST(CatchAll, FullCombinationTable) {
  const Classification accepted = cls(Verdict::Deliverable, Reason::Accepted);
  const Classification c252 = cls(Verdict::Risky, Reason::CatchAll);
  const Classification nf = cls(Verdict::Undeliverable, Reason::MailboxNotFound);
  const Classification dis = cls(Verdict::Undeliverable, Reason::MailboxDisabled);
  const Classification full = cls(Verdict::Risky, Reason::MailboxFull);
  Classification grey = cls(Verdict::Unknown, Reason::Greylisted);
  grey.retry_later = true;
  Classification blocked = cls(Verdict::Unknown, Reason::Blocked);
  blocked.source_blocked = true;
  Classification timeout = cls(Verdict::Unknown, Reason::Timeout);
  timeout.session_fatal = true;
  const Classification nxdomain = cls(Verdict::Undeliverable, Reason::NoSuchDomain);

  const std::vector<std::optional<Classification>> probes = {
      std::nullopt, accepted, c252, nf, dis, full, grey, blocked, timeout};
  const std::vector<Classification> addresses = {accepted, c252,    nf,      dis,     full,
                                                 grey,     blocked, timeout, nxdomain};
  constexpr auto Y = CatchAll::Yes;
  constexpr auto N = CatchAll::No;
  constexpr auto U = CatchAll::Unknown;
  // expected catch_all, row = address, column = probe (none, acc, 252, nf, dis, full, grey,
  // blocked, timeout).
  const CatchAll expect_ca[9][9] = {
      {U, Y, Y, N, N, U, U, U, U},  // accepted
      {Y, Y, Y, N, N, Y, Y, Y, Y},  // 252
      {N, Y, Y, N, N, N, N, N, N},  // not found
      {N, Y, Y, N, N, N, N, N, N},  // disabled
      {U, Y, Y, N, N, U, U, U, U},  // full
      {U, Y, Y, N, N, U, U, U, U},  // greylisted
      {U, Y, Y, N, N, U, U, U, U},  // blocked
      {U, Y, Y, N, N, U, U, U, U},  // timeout
      {U, Y, Y, N, N, U, U, U, U},  // nxdomain
  };
  for (size_t a = 0; a < addresses.size(); ++a) {
    for (size_t p = 0; p < probes.size(); ++p) {
      const auto out = combine_catch_all(addresses[a], probes[p]);
      EXPECT_EQ(out.catch_all, expect_ca[a][p]) << "address " << a << " probe " << p;
      Classification want = addresses[a];
      if (a == 0 && (p == 1 || p == 2)) {  // accepted + probe accepted: risky/catch_all
        want.verdict = Verdict::Risky;
        want.reason = Reason::CatchAll;
      }
      EXPECT_EQ(out.result, want) << "address " << a << " probe " << p;
    }
  }
}

TEST(CatchAll, FromProbe) {
  EXPECT_EQ(catch_all_from_probe(cls(Verdict::Deliverable, Reason::Accepted)), CatchAll::Yes);
  EXPECT_EQ(catch_all_from_probe(cls(Verdict::Risky, Reason::CatchAll)), CatchAll::Yes);
  EXPECT_EQ(catch_all_from_probe(cls(Verdict::Undeliverable, Reason::MailboxNotFound)),
            CatchAll::No);
  EXPECT_EQ(catch_all_from_probe(cls(Verdict::Undeliverable, Reason::InvalidSyntax)),
            CatchAll::Unknown);
  EXPECT_EQ(catch_all_from_probe(cls(Verdict::Unknown, Reason::Greylisted)), CatchAll::Unknown);
  EXPECT_EQ(to_optional(CatchAll::Yes), std::optional<bool>(true));
  EXPECT_EQ(to_optional(CatchAll::No), std::optional<bool>(false));
  EXPECT_EQ(to_optional(CatchAll::Unknown), std::nullopt);
}

TEST(CatchAll, EndToEndFromReplies) {
  const auto address = classify(rcpt(250, enh(2, 1, 5), {"Ok"}));
  const auto probe_ok = classify(rcpt(250, enh(2, 1, 5), {"Ok"}));
  const auto probe_no = classify(rcpt(550, enh(5, 1, 1), {"User unknown"}));
  const auto probe_grey = classify(rcpt(450, enh(4, 7, 1), {"Greylisted"}));
  auto r = combine_catch_all(address, probe_ok);
  EXPECT_VR(r.result, Risky, CatchAll);
  EXPECT_EQ(r.catch_all, CatchAll::Yes);
  r = combine_catch_all(address, probe_no);
  EXPECT_VR(r.result, Deliverable, Accepted);
  EXPECT_EQ(r.catch_all, CatchAll::No);
  r = combine_catch_all(address, probe_grey);
  EXPECT_VR(r.result, Deliverable, Accepted);
  EXPECT_EQ(r.catch_all, CatchAll::Unknown);
}

// ---- the phrase matcher ----

TEST(TextRules, NormalizesCaseAndWhitespace) {
  Reply r;
  r.lines = {"  USER\tUnknown  ", "", "in Local\r\nRecipient   Table"};
  std::array<char, 128> buf;
  EXPECT_EQ(normalize_text(r, buf), " user unknown in local recipient table ");
  std::array<char, 8> tiny;
  const auto cut = normalize_text(r, tiny);
  EXPECT_LE(cut.size(), tiny.size());
  EXPECT_EQ(cut.front(), ' ');
  EXPECT_EQ(cut.back(), ' ');
  Reply none;
  EXPECT_EQ(normalize_text(none, buf), " ");
}

TEST(TextRules, OnlyTheFirstKilobytesAreRead) {
  Reply early;
  early.lines = {"user unknown " + std::string(5000, 'x')};
  EXPECT_EQ(match_reply(early).cls, TextClass::MailboxNotFound);
  Reply late;
  late.lines = {std::string(5000, 'x') + " user unknown"};
  EXPECT_EQ(match_reply(late).cls, TextClass::None);
}

TEST(TextRules, PhraseSplitAcrossLinesStillMatches) {
  Reply r;
  r.lines = {"Our system has detected an unusual rate of", "unsolicited mail"};
  EXPECT_EQ(match_reply(r).cls, TextClass::SourceBlocked);
}

TEST(TextRules, EarliestRuleWinsWhereverItOccurs) {
  // "user unknown" occurs first in the text, but the greylist rule is earlier in the table.
  EXPECT_EQ(match_text(" user unknown, greylisted ").cls, TextClass::Greylisted);
  EXPECT_EQ(match_text(" too many recipients from 1.2.3.4 ").cls, TextClass::ServerRateLimit);
  EXPECT_EQ(match_text(" too many recipients ").cls, TextClass::TooManyRecipients);
  EXPECT_EQ(match_text(" relaying denied. ip name possibly forged ").cls, TextClass::SourceBlocked);
  EXPECT_EQ(match_text(" access denied. as(201806281) ").cls, TextClass::MailboxNotFound);
  EXPECT_EQ(match_text(" rbl listed ").cls, TextClass::SourceBlocked);  // framed by a space
  EXPECT_EQ(match_text(" garbled ").cls, TextClass::None);              // "rbl" inside a word
  EXPECT_EQ(match_text(" user not listed in public name & address book ").cls, TextClass::None);
  EXPECT_EQ(match_text("spam").cls, TextClass::Policy);  // no framing spaces needed
  EXPECT_EQ(match_text("abc").cls, TextClass::None);
  EXPECT_EQ(match_text("").cls, TextClass::None);
  EXPECT_EQ(match_text("x").cls, TextClass::None);
}

TEST(TextRules, EveryPhraseMatchesItselfAndReportsItsRule) {
  const auto rules = text_rules();
  ASSERT_GT(rules.size(), 64u);  // spans more than one word of the bit index
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string text = " " + std::string(rules[i].phrase) + " ";
    const TextMatch m = match_text(text);
    // The phrase itself, or an earlier rule contained in it (e.g. "relaying" in "relaying..."),
    // must win; never a later one.
    ASSERT_NE(m.rule, -1) << rules[i].phrase;
    EXPECT_LE(m.rule, static_cast<int>(i)) << rules[i].phrase;
    if (m.rule != static_cast<int>(i)) {
      EXPECT_NE(text.find(rules[static_cast<size_t>(m.rule)].phrase), std::string::npos);
    }
    EXPECT_NE(to_string(rules[i].cls), "none");
  }
}

TEST(TextRules, StrongClasses) {
  EXPECT_TRUE(is_strong(TextClass::SourceBlocked));
  EXPECT_TRUE(is_strong(TextClass::TooManyRecipients));
  EXPECT_FALSE(is_strong(TextClass::MailboxNotFound));
  EXPECT_FALSE(is_strong(TextClass::None));
  EXPECT_FALSE(is_strong(TextClass::RetryLater));
}

// ---- docs and vocabulary ----

TEST(Docs, VerdictsPageListsEveryPhraseAndReason) {
  std::ifstream in(MXP_DOCS_VERDICTS_MD);
  ASSERT_TRUE(in) << MXP_DOCS_VERDICTS_MD;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  for (const auto& r : text_rules()) {
    EXPECT_NE(doc.find("`" + std::string(r.phrase) + "`"), std::string::npos)
        << "docs/verdicts.md does not list the phrase `" << r.phrase << "`";
  }
#define MXP_X(id, name) \
  EXPECT_NE(doc.find("`" name "`"), std::string::npos) << "reason " name " not documented";
  MXP_REASONS(MXP_X)
#undef MXP_X
}

// Providers that accept every address at RCPT (policy quirks.rcpt_accepts_all: Yahoo/AOL,
// Mail.ru): only an acceptance changes; their rejections and everything else stand.
TEST(ProviderQuirks, RcptAcceptsAll) {
  // Yahoo's real acceptance line (truemail-rb/truemail-go#91).
  auto yahoo_ok = classify(rcpt(250, {"recipient <someone@yahoo.com> ok"}));
  ASSERT_EQ(yahoo_ok.verdict, Verdict::Deliverable);
  auto q = apply_rcpt_accepts_all(yahoo_ok);
  EXPECT_VR(q, Risky, Unverifiable);
  EXPECT_EQ(q.scope, yahoo_ok.scope);
  EXPECT_FALSE(q.retry_later);
  EXPECT_VR(apply_rcpt_accepts_all(classify(rcpt(251, {"User not local; will forward"}))), Risky,
            Unverifiable);
  const Classification stand[] = {
      classify(rcpt(552, {"1 Requested mail action aborted, mailbox not found"})),
      classify(rcpt(554, {"delivery error: dd This user doesn't have a yahoo.com account"})),
      classify(rcpt(554, {"30 Sorry, your message to x@yahoo.com cannot be delivered. This mailbox "
                          "is disabled (554.30)."})),
      classify(rcpt(421, enh(4, 7, 0), {"[TSS04] Messages from 192.0.2.7 temporarily deferred"})),
      classify(rcpt(252, enh(2, 1, 5), {"Cannot VRFY user, but will accept message"})),
      combine_catch_all(classify(rcpt(250, {"Ok"})), classify(rcpt(250, {"Ok"}))).result,
      classify_dns(DnsStatus::NxDomain),
  };
  for (const auto& c : stand)
    EXPECT_EQ(apply_rcpt_accepts_all(c), c) << to_string(c.reason);
}

TEST(Vocabulary, EveryReasonIsProducedByThePolicy) {
  // One outcome per reason, each also checked in its own test above; this guards the vocabulary
  // as a whole: a reason the policy can no longer produce fails here.
  std::set<Reason> produced;
  auto add = [&](const Classification& c) { produced.insert(c.reason); };
  add(classify(rcpt(250, enh(2, 1, 5), {"Ok"})));
  add(classify_syntax_error());
  add(classify_dns(DnsStatus::NxDomain));
  add(classify_dns(DnsStatus::NullMx));
  add(classify_dns(DnsStatus::NoMailServer));
  add(classify(rcpt(550, enh(5, 1, 1), {"User unknown"})));
  add(classify(rcpt(550, enh(5, 2, 1), {"Disabled"})));
  add(combine_catch_all(classify(rcpt(250, {"Ok"})), classify(rcpt(250, {"Ok"}))).result);
  add(classify(rcpt(552, enh(5, 2, 2), {"Mailbox full"})));
  add(classify(rcpt(450, enh(4, 2, 0), {"Greylisted"})));
  add(classify(rcpt(421, {"Too many connections"})));
  add(classify(rcpt(554, enh(5, 7, 1), {"blocked using zen.spamhaus.org"})));
  add(classify(failure(Stage::RcptTo, Failure::Timeout)));
  add(classify(failure(Stage::Connect, Failure::ConnectFailed)));
  add(classify_dns(DnsStatus::ServFail));
  add(classify(failure(Stage::Banner, Failure::Closed)));
  add(classify(rcpt(451, enh(4, 3, 0), {"Local error"})));
  add(apply_rcpt_accepts_all(classify(rcpt(250, enh(2, 1, 5), {"Ok"}))));
  add(classify_proxy_failure());
  add(classify(failure(Stage::StartTls, Failure::TlsUnavailable)));
  add(classify(reply(Stage::MailFrom, 550, enh(5, 7, 1), {"<>: null sender not accepted"})));
  add(classify_listed(true));
  add(classify_listed(false));
  for (int i = 0; i < kReasonCount; ++i) {
    EXPECT_TRUE(produced.count(static_cast<Reason>(i)))
        << "nothing produced reason " << to_string(static_cast<Reason>(i));
  }
  EXPECT_EQ(static_cast<int>(produced.size()), kReasonCount);
}

}  // namespace
}  // namespace mxp::verdict
