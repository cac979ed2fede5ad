// The verdict policy against real reply texts, as the big providers and common MTAs put them on
// the wire (multi-line continuations, enhanced codes, CRLF), parsed by the real reply parser.
// IP addresses and host names are replaced by documentation values; the wording is the servers'.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "smtp/reply_parser.hpp"
#include "verdict/classify.hpp"

namespace mxp::verdict {
namespace {

using smtp::Stage;

struct Case {
  const char* source;  // who sends it
  Stage stage;
  const char* wire;
  Verdict verdict;
  Reason reason;
  // Exactly the flags expected to be set: R retry_later, S source_blocked, B back_off,
  // F session_fatal, L recipient_limit.
  const char* flags;
};

constexpr Stage RCPT = Stage::RcptTo;
constexpr Stage MAIL = Stage::MailFrom;
constexpr Stage BANNER = Stage::Banner;
constexpr Stage EHLO = Stage::Ehlo;

using V = Verdict;
using R = Reason;

const Case kCases[] = {
    // ---------------- accepted ----------------
    {"Gmail", RCPT, "250 2.1.5 OK a1si1234567qkb.100 - gsmtp\r\n", V::Deliverable, R::Accepted, ""},
    {"Postfix", RCPT, "250 2.1.5 Ok\r\n", V::Deliverable, R::Accepted, ""},
    {"Exchange", RCPT, "250 2.1.5 Recipient OK\r\n", V::Deliverable, R::Accepted, ""},
    {"sendmail", RCPT, "250 2.1.5 <someone@example.com>... Recipient ok\r\n", V::Deliverable,
     R::Accepted, ""},
    {"RFC 5321 forward", RCPT, "251 2.1.5 User not local; will forward to <a@example.org>\r\n",
     V::Deliverable, R::Accepted, ""},
    {"RFC 5321 cannot verify", RCPT,
     "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n", V::Risky,
     R::CatchAll, ""},

    // ---------------- mailbox does not exist ----------------
    {"Gmail", RCPT,
     "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
     "550-5.1.1 unnecessary spaces. Learn more at\r\n"
     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si1234567qkb.100 - gsmtp\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Outlook.com", RCPT,
     "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
     "[AM4PEPF00027A5F.eurprd04.prod.outlook.com 2023-09-19T15:05:34.324Z 08DBB71928CA8F8E]\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Office 365", RCPT,
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Office 365 edge blocking", RCPT,
     "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
     "[DM6NAM12FT052.eop-nam12.prod.protection.outlook.com 2023-09-18T12:48:32.808Z "
     "08DBB45899852BA7]\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Exchange", RCPT, "550 5.1.1 User unknown\r\n", V::Undeliverable, R::MailboxNotFound, ""},
    {"Yahoo", RCPT,
     "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - "
     "mta1234.mail.gq1.yahoo.com\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Yahoo", RCPT, "552 1 Requested mail action aborted, mailbox not found\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"Postfix virtual", RCPT,
     "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox "
     "table\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Postfix local", RCPT,
     "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient "
     "table\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Postfix relay table", RCPT,
     "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in relay recipient "
     "table\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Exim", RCPT, "550 Unrouteable address\r\n", V::Undeliverable, R::MailboxNotFound, ""},
    {"sendmail", RCPT, "550 5.1.1 <nobody@example.com>... User unknown\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"qmail", RCPT, "550 sorry, no mailbox here by that name. (#5.1.1)\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"vpopmail chkuser", RCPT,
     "550 5.1.1 sorry, no mailbox here by that name (#5.1.1 - chkuser)\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"Barracuda", RCPT,
     "550 cuda_nsu 5.1.1 <nobody@example.com> Recipient address rejected: User unknown\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Mimecast", RCPT,
     "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 "
     "[AbCdEfGhIjKlMnOpQ.uk123]\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Cisco IronPort", RCPT, "550 #5.1.0 Address rejected.\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"iCloud", RCPT, "550 5.1.1 <nobody@icloud.com>: user does not exist\r\n", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"Lotus Domino", RCPT, "550 5.1.1 User not listed in public Name & Address Book\r\n",
     V::Undeliverable, R::MailboxNotFound, ""},
    {"Postfix", RCPT, "501 5.1.3 Bad recipient address syntax\r\n", V::Undeliverable,
     R::InvalidSyntax, ""},

    // ---------------- disabled ----------------
    {"Gmail", RCPT,
     "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\r\n"
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser b2si1234567wrx.301 - gsmtp\r\n",
     V::Undeliverable, R::MailboxDisabled, ""},
    {"Yahoo", RCPT,
     "554 delivery error: dd Sorry, your message to someone@yahoo.com cannot be delivered. This "
     "mailbox is disabled (554.30). - mta4321.mail.bf1.yahoo.com\r\n",
     V::Undeliverable, R::MailboxDisabled, ""},
    {"AT&T (the code says disabled)", RCPT,
     "550 5.2.1 <NOBODY@PRODIGY.NET>... Addressee unknown, relay=[192.0.2.7]\r\n", V::Undeliverable,
     R::MailboxDisabled, ""},

    // ---------------- full ----------------
    {"Gmail", RCPT,
     "452-4.2.2 The email account that you tried to reach is over quota. Please direct\r\n"
     "452-4.2.2 the recipient to\r\n"
     "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp c3si1234567pla.200 - gsmtp\r\n",
     V::Risky, R::MailboxFull, ""},
    {"Hotmail (classic)", RCPT,
     "552 Requested mail action aborted: exceeded storage allocation\r\n", V::Risky, R::MailboxFull,
     ""},
    {"AOL (classic)", RCPT, "552 jdoe@aol.com has a full mailbox\r\n", V::Risky, R::MailboxFull,
     ""},
    {"Juno (sendmail)", RCPT, "552 <JDOE@JUNO.COM>... Mail quota exceeded\r\n", V::Risky,
     R::MailboxFull, ""},
    {"Postfix + Dovecot quota", RCPT,
     "452 4.2.2 <someone@example.com>: Recipient address rejected: Error: BUZON LLENO. MAILBOX IS "
     "FULL.\r\n",
     V::Risky, R::MailboxFull, ""},

    // ---------------- greylisting ----------------
    {"postgrey", RCPT,
     "450 4.2.0 <someone@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html\r\n",
     V::Unknown, R::Greylisted, "R"},
    {"sqlgrey", RCPT,
     "450 4.7.1 <someone@example.com>: Recipient address rejected: Greylisted for 5 minutes\r\n",
     V::Unknown, R::Greylisted, "R"},
    {"milter-greylist", RCPT, "451 4.7.1 Greylisting in action, please come back in 00:05:00\r\n",
     V::Unknown, R::Greylisted, "R"},
    {"greylistd (Exim)", RCPT,
     "451 192.0.2.7 is not yet authorized to deliver mail from <probe@example.net> to "
     "<someone@example.com>. Please try later.\r\n",
     V::Unknown, R::Greylisted, "R"},
    {"Exim ACL greylist", RCPT,
     "451 You have been greylisted. This is part of our standard anti-spam measures and your mail "
     "system should automatically try again later. We will accept this mail from you in 5 "
     "minutes.\r\n",
     V::Unknown, R::Greylisted, "R"},
    {"OpenBSD spamd", RCPT, "451 Temporary failure, please try again later.\r\n", V::Unknown,
     R::Greylisted, "R"},
    {"Plesk greylisting", RCPT, "451 4.7.1 Service unavailable - try again later\r\n", V::Unknown,
     R::Greylisted, "R"},
    {"Stalwart", RCPT, "422 4.2.2 Greylisted, please try again in a few moments.\r\n", V::Unknown,
     R::Greylisted, "R"},
    {"triad greylist", RCPT,
     "451 sender/recip/ip triad greylisted; retry AFTER A DECENT INTERVAL will succeed\r\n",
     V::Unknown, R::Greylisted, "R"},

    // ---------------- recipient limits: not a bad mailbox ----------------
    {"Office 365 / sendmail", RCPT, "452 4.5.3 Too many recipients\r\n", V::Unknown, R::RateLimited,
     "RL"},
    {"Postfix", RCPT, "452 4.5.3 Error: too many recipients\r\n", V::Unknown, R::RateLimited, "RL"},
    {"Exim", RCPT, "452 too many recipients\r\n", V::Unknown, R::RateLimited, "RL"},
    {"Gmail", RCPT,
     "452-4.5.3 Your message has too many recipients. For more information regarding\r\n"
     "452-4.5.3 Google's sending limits, visit\r\n"
     "452 4.5.3  https://support.google.com/mail/?p=TooManyRecipientsError f6si12.7 - gsmtp\r\n",
     V::Unknown, R::RateLimited, "RL"},
    {"Gmail", RCPT,
     "451-4.3.0 Multiple destination domains per transaction is unsupported. Please\r\n"
     "451 4.3.0 try again. g7si1234567qtx.45 - gsmtp\r\n",
     V::Unknown, R::RateLimited, "RL"},

    // ---------------- rate limits ----------------
    {"Gmail receiving rate", RCPT,
     "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\r\n"
     "450-4.2.1 prevents additional messages from being delivered. Please resend your\r\n"
     "450-4.2.1 message at a later time. If the user is able to receive mail at that\r\n"
     "450-4.2.1 time, your message will be delivered. For more information, please\r\n"
     "450 4.2.1  https://support.google.com/mail/?p=ReceivingRate d4si1234.45 - gsmtp\r\n",
     V::Unknown, R::RateLimited, "R"},
    {"Yahoo", RCPT, "450 User is receiving mail too quickly\r\n", V::Unknown, R::RateLimited, "R"},
    {"Postfix anvil", RCPT, "450 4.7.1 Error: too many recipients from 192.0.2.7\r\n", V::Unknown,
     R::RateLimited, "RB"},
    {"Postfix anvil", BANNER,
     "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.7\r\n", V::Unknown,
     R::RateLimited, "RBF"},
    {"Postfix error limit", RCPT, "421 4.7.0 mx.example.com Error: too many errors\r\n", V::Unknown,
     R::RateLimited, "RBF"},
    {"Exim", BANNER,
     "421 Too many concurrent SMTP connections from this IP address; please try again later.\r\n",
     V::Unknown, R::RateLimited, "RBF"},
    {"Exchange", BANNER,
     "421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing "
     "transmission channel\r\n",
     V::Unknown, R::RateLimited, "RBF"},
    {"Office 365", RCPT,
     "451 4.7.500 Server busy. Please try again later from [192.0.2.7]. (S77714) "
     "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]\r\n",
     V::Unknown, R::RateLimited, "RB"},
    {"Yahoo", RCPT, "451 VS1-IP Excessive unknown recipients - possible Open Relay (#4.1.8)\r\n",
     V::Unknown, R::RateLimited, "RB"},
    {"Yahoo", RCPT, "421 Max message per connection reached, closing transmission channel\r\n",
     V::Unknown, R::RateLimited, "RBF"},
    {"Gmail", EHLO,
     "421-4.7.0 Try again later, closing connection. (EHLO)\r\n"
     "421 4.7.0  For more information, go to https://support.google.com/a/answer/3221692 - "
     "gsmtp\r\n",
     V::Unknown, R::RateLimited, "RBF"},

    // ---------------- our IP / identity blocked ----------------
    {"Gmail", RCPT,
     "421-4.7.0 [192.0.2.7      15] Our system has detected an unusual rate of\r\n"
     "421-4.7.0 unsolicited mail originating from your IP address. To protect our\r\n"
     "421-4.7.0 users from spam, mail sent from your IP address has been temporarily\r\n"
     "421-4.7.0 rate limited. Please visit\r\n"
     "421-4.7.0  https://support.google.com/mail/?p=UnsolicitedRateLimitError to\r\n"
     "421 4.7.0 review our Bulk Email Senders Guidelines. e5si1234567ejc.123 - gsmtp\r\n",
     V::Unknown, R::Blocked, "RSBF"},
    {"Gmail", MAIL,
     "421-4.7.0 [192.0.2.7] Our system has detected that this message is\r\n"
     "421-4.7.0 suspicious due to the very low reputation of the sending IP address.\r\n"
     "421-4.7.0 To protect our users from spam, mail sent from your IP address has\r\n"
     "421 4.7.0 been temporarily rate limited. h8si1234567.10 - gsmtp\r\n",
     V::Unknown, R::Blocked, "RSBF"},
    {"Gmail", RCPT,
     "550-5.7.1 [192.0.2.7] The IP you're using to send mail is not authorized to\r\n"
     "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\r\n"
     "550-5.7.1 service provider instead. Learn more at\r\n"
     "550 5.7.1  https://support.google.com/mail/?p=NotAuthorizedError i9si12.11 - gsmtp\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Google Workspace", RCPT,
     "421 4.7.0 IP not in whitelist for RCPT domain, closing connection.\r\n", V::Unknown,
     R::Blocked, "RSBF"},
    {"Outlook.com", RCPT,
     "550 5.7.1 Unfortunately, messages from [192.0.2.7] weren't sent. Please contact your "
     "Internet "
     "service provider since part of their network is on our block list (S3150). You can also "
     "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
     "[AM1EUR02FT003.eop-EUR02.prod.protection.outlook.com]\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Office 365", RCPT,
     "550 5.7.606 Access denied, banned sending IP [192.0.2.7]. To request removal from this list "
     "please visit https://sender.office.com/ and follow the directions. For more information "
     "please go to  http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) "
     "[BN8NAM11FT012.eop-nam11.prod.protection.outlook.com]\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Outlook.com", RCPT,
     "550 5.7.1 Service unavailable, Client host [192.0.2.7] blocked using Spamhaus. To request "
     "removal from this list see https://www.spamhaus.org/query/ip/192.0.2.7 (AS3130). "
     "[BN3NAM04FT046.eop-NAM04.prod.protection.outlook.com]\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Yahoo", MAIL,
     "421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume or "
     "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes\r\n",
     V::Unknown, R::Blocked, "RSBF"},
    {"Yahoo", BANNER,
     "421 4.7.0 [TS01] Messages from 192.0.2.7 temporarily deferred due to user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes\r\n",
     V::Unknown, R::Blocked, "RSBF"},
    {"Yahoo", BANNER,
     "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.7, because the ip is in "
     "Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html\r\n",
     V::Unknown, R::Blocked, "SF"},
    {"Postfix RBL", RCPT,
     "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.7\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Postfix RBL (SpamCop)", RCPT,
     "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using bl.spamcop.net; Blocked "
     "- see https://www.spamcop.net/bl.shtml?192.0.2.7\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Barracuda RBL", BANNER,
     "554 Service unavailable; Client host [192.0.2.7] blocked using b.barracudacentral.org; "
     "http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.7\r\n",
     V::Unknown, R::Blocked, "SF"},
    {"Proofpoint", RCPT, "554 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.7\r\n",
     V::Unknown, R::Blocked, "S"},
    {"GMX", BANNER,
     "554-gmx.net (mxgmx117) Nemesis ESMTP Service not available\r\n"
     "554-No SMTP service\r\n"
     "554-IP address is block listed.\r\n"
     "554 For explanation visit https://www.gmx.net/mail/senderguidelines?c=bl\r\n",
     V::Unknown, R::Blocked, "SF"},
    {"Comcast", BANNER,
     "554 resimta-h1p-037598.sys.comcast.net resimta-h1p-037598.sys.comcast.net 192.0.2.7 found on "
     "one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001\r\n",
     V::Unknown, R::Blocked, "SF"},
    {"Mimecast", RCPT,
     "554 csi.mimecast.org Poor Reputation Sender. - https://community.mimecast.com/docs/"
     "DOC-1369#554 [6ATVl4DjOvSA6XNsWGoUFw.us31]\r\n",
     V::Unknown, R::Blocked, "S"},
    {"Symantec", BANNER,
     "553 Connection rejected by policy [7.3] 38206, please visit "
     "https://support.symantec.com/en_US/article.TECH246726.html for more details about this "
     "error message.\r\n",
     V::Unknown, R::Blocked, "SF"},
    {"Amazon", BANNER,
     "554 smtp-fw-9107.amazon.com; SBRS score too low: http://www.senderbase.org/\r\n", V::Unknown,
     R::Blocked, "SF"},
    {"Postfix PTR", RCPT,
     "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]\r\n", V::Unknown,
     R::Blocked, "RS"},
    {"Postfix access", RCPT,
     "554 5.7.1 <unknown[192.0.2.7]>: Client host rejected: Access denied\r\n", V::Unknown,
     R::Blocked, "S"},
    {"Postfix HELO", RCPT,
     "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname\r\n", V::Unknown,
     R::Blocked, "S"},
    // Refusals of our MAIL FROM: never about the mailbox; the next sender is tried first.
    {"Postfix sender", MAIL,
     "553 5.1.8 <verify@localhost>: Sender address rejected: Domain not found\r\n", V::Unknown,
     R::SenderRefused, "M"},
    {"Postfix sender (delayed to RCPT)", RCPT,
     "450 4.1.8 <probe@unresolvable.example>: Sender address rejected: Domain not found\r\n",
     V::Unknown, R::SenderRefused, "RM"},
    {"Postfix check_sender_access <> REJECT (delayed to RCPT)", RCPT,
     "554 5.7.1 <>: Sender address rejected: Access denied\r\n", V::Unknown, R::SenderRefused, "M"},
    {"Exim sender callout", RCPT,
     "550-Verification failed for <probe@example.net>\r\n"
     "550-Unrouteable address\r\n"
     "550 Sender verify failed\r\n",
     V::Unknown, R::SenderRefused, "M"},
    {"Ipswitch IMail, Refuse NULL <> Senders", MAIL, "501 bogus mail from\r\n", V::Unknown,
     R::SenderRefused, "M"},
    {"null sender refused at MAIL", MAIL, "550 5.7.1 <>: null sender not accepted\r\n", V::Unknown,
     R::SenderRefused, "M"},
    {"Exchange bad outbound sender", MAIL, "550 5.1.8 Access denied, bad outbound sender\r\n",
     V::Unknown, R::SenderRefused, "M"},
    {"Postfix reject_rhsbl_sender", RCPT,
     "554 5.7.1 <x@spam.example>: Sender address rejected: Service unavailable; Sender address "
     "[spam.example] blocked using dbl.spamhaus.org\r\n",
     V::Unknown, R::SenderRefused, "M"},
    // A MAIL FROM refused without a reason: the next sender first, then the source rotates.
    {"MAIL FROM refused, no reason", MAIL, "550 5.7.1 Access denied\r\n", V::Unknown, R::Blocked,
     "SM"},
    // Outlook's per-transaction limits: a limit, never a verdict (reported by Reacher's users).
    {"Outlook multiple regions", RCPT,
     "452 4.5.3 Recipients belong to multiple regions ATTR38 "
     "[DM6NAM11FT074.eop-nam11.prod.protection.outlook.com 2023-10-28T12:19:33.163Z "
     "08DBD79CFB305B7E]\r\n",
     V::Unknown, R::RateLimited, "RL"},
    {"Outlook too many recipients", RCPT,
     "452 4.5.3 Too many recipients (AS780090) "
     "[SN1NAM02FT003.eop-nam02.prod.protection.outlook.com]"
     "\r\n",
     V::Unknown, R::RateLimited, "RL"},
    {"sendmail PTR", RCPT,
     "550 5.7.1 <someone@example.org>... Relaying denied. IP name possibly forged [192.0.2.7]\r\n",
     V::Unknown, R::Blocked, "S"},

    // ---------------- policy, relay: the mailbox was not judged ----------------
    {"Postfix", RCPT, "554 5.7.1 <someone@example.org>: Relay access denied\r\n", V::Unknown,
     R::Blocked, ""},
    {"Postfix (defer_unauth_destination)", RCPT,
     "454 4.7.1 <someone@example.org>: Relay access denied\r\n", V::Unknown, R::Blocked, "R"},
    {"sendmail", RCPT,
     "550 5.7.1 <someone@example.org>... Relaying denied. Proper authentication required.\r\n",
     V::Unknown, R::Blocked, ""},
    {"Exchange", RCPT, "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain\r\n",
     V::Unknown, R::Blocked, ""},
    {"qmail", RCPT, "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
     V::Unknown, R::Blocked, ""},
    {"Exchange restricted recipient", RCPT,
     "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required\r\n", V::Unknown, R::Blocked,
     ""},
    {"Postfix access map", RCPT,
     "550 5.7.1 <someone@example.com>: Recipient address rejected: Access denied\r\n", V::Unknown,
     R::Blocked, ""},

    // ---------------- temporary trouble ----------------
    {"Postfix address verification", RCPT,
     "450 4.1.1 <someone@example.com>: Recipient address rejected: unverified address: Address "
     "verification in progress\r\n",
     V::Unknown, R::TemporaryFailure, "R"},
    {"Postfix", RCPT, "452 4.3.1 Insufficient system storage\r\n", V::Unknown, R::TemporaryFailure,
     "R"},
    {"Exchange", RCPT, "452 4.3.1 Insufficient system resources\r\n", V::Unknown,
     R::TemporaryFailure, "R"},
    {"postscreen", RCPT, "450 4.3.2 Service currently unavailable\r\n", V::Unknown,
     R::TemporaryFailure, "R"},
    {"postscreen DNSBL", RCPT, "550 5.3.2 Service currently unavailable\r\n", V::Unknown,
     R::TemporaryFailure, ""},
    {"Gmail", RCPT, "451 4.3.0 Mail server temporarily rejected message. j1si12.13 - gsmtp\r\n",
     V::Unknown, R::TemporaryFailure, "R"},

    // ---------------- protocol ----------------
    // The session tries STARTTLS first (auto); this is what is left when it could not.
    {"Gmail", MAIL, "530 5.7.0 Must issue a STARTTLS command first. k2si1234567.14 - gsmtp\r\n",
     V::Unknown, R::TlsRequired, ""},
    {"Postfix", EHLO, "502 5.5.2 Error: command not recognized\r\n", V::Unknown, R::ProtocolError,
     "F"},
    {"Postfix", RCPT, "503 5.5.1 Error: need MAIL command\r\n", V::Unknown, R::ProtocolError, ""},
};

std::string flags_of(const Classification& c) {
  std::string f;
  if (c.retry_later) f += 'R';
  if (c.source_blocked) f += 'S';
  if (c.back_off) f += 'B';
  if (c.session_fatal) f += 'F';
  if (c.recipient_limit) f += 'L';
  if (c.sender_refused) f += 'M';
  return f;
}

TEST(RealReplies, EachCase) {
  for (const Case& k : kCases) {
    const auto reply = smtp::parse_reply(k.wire);
    ASSERT_TRUE(reply.has_value()) << k.source << ": unparseable: " << k.wire;
    smtp::Outcome o;
    o.stage = k.stage;
    o.reply = *reply;
    const Classification c = classify(o);
    EXPECT_EQ(c.verdict, k.verdict) << k.source << ": " << k.wire << "got " << to_string(c.verdict)
                                    << "/" << to_string(c.reason);
    EXPECT_EQ(c.reason, k.reason) << k.source << ": " << k.wire << "got " << to_string(c.reason);
    EXPECT_EQ(flags_of(c), k.flags) << k.source << ": " << k.wire;
  }
}

TEST(RealReplies, EnoughTextsAndEveryReplyReasonCovered) {
  EXPECT_GE(std::size(kCases), 40u);
  std::set<Reason> reasons;
  for (const Case& k : kCases)
    reasons.insert(k.reason);
  // Every reason an SMTP reply can produce (the others come from DNS, failures or syntax).
  for (Reason r : {R::SenderRefused, R::Accepted, R::CatchAll, R::MailboxNotFound,
                   R::MailboxDisabled, R::MailboxFull, R::Greylisted, R::RateLimited, R::Blocked,
                   R::TemporaryFailure, R::ProtocolError, R::InvalidSyntax}) {
    EXPECT_TRUE(reasons.count(r)) << "no real text for " << to_string(r);
  }
}

TEST(RealReplies, CaseInsensitive) {
  const auto upper =
      smtp::parse_reply("550 5.7.1 CLIENT HOST [192.0.2.7] BLOCKED USING ZEN.SPAMHAUS.ORG\r\n");
  ASSERT_TRUE(upper);
  smtp::Outcome o;
  o.stage = RCPT;
  o.reply = *upper;
  const auto c = classify(o);
  EXPECT_EQ(c.reason, R::Blocked);
  EXPECT_TRUE(c.source_blocked);
}

// Replies that echo our recipient, our sender or our HELO name: a phrase inside an echo says
// nothing about how the server treats us. Postfix's "<spamhaus@d1.test>: ... User unknown" once
// rested a whole MX group as blocked; a "greylist..." local part made final replies greylisted.
struct EchoCase {
  const char* wire;
  const char* recipient;
  Verdict verdict;
  Reason reason;
  const char* flags;
};

const EchoCase kEchoCases[] = {
    {"550 5.1.1 <spamhaus@d1.test>: Recipient address rejected: User unknown\r\n",
     "spamhaus@d1.test", V::Undeliverable, R::MailboxNotFound, ""},
    {"550 5.1.1 <abuse@spamhaus.org>: Recipient address rejected: User unknown in virtual mailbox "
     "table\r\n",
     "abuse@spamhaus.org", V::Undeliverable, R::MailboxNotFound, ""},
    {"550 5.1.1 <dnsbl@example.org>... User unknown\r\n", "dnsbl@example.org", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"550 5.1.1 <Blacklist@Example.org>: Recipient address rejected: User unknown\r\n",
     "blacklist@example.org", V::Undeliverable, R::MailboxNotFound, ""},
    // Bare, without angle brackets, and without an enhanced code to fall back on.
    {"550 No such user here: spamhaus@example.org\r\n", "spamhaus@example.org", V::Undeliverable,
     R::MailboxNotFound, ""},
    {"550 No such user in domain spamcop.example\r\n", "x@spamcop.example", V::Undeliverable,
     R::MailboxNotFound, ""},
    // Greylist local parts on final and full replies.
    {"550 5.1.1 <greylist@example.org>: Recipient address rejected: User unknown\r\n",
     "greylist@example.org", V::Undeliverable, R::MailboxNotFound, ""},
    {"452 4.2.2 <greylisted.me@example.org>: Recipient address rejected: Mailbox full\r\n",
     "greylisted.me@example.org", V::Risky, R::MailboxFull, ""},
    {"550 <graylist@example.org> unknown user\r\n", "graylist@example.org", V::Undeliverable,
     R::MailboxNotFound, ""},
    // Rate-limit, TLS and limit phrases in an echo.
    {"550 5.1.1 <too.many.connections@example.org>: Recipient address rejected: User unknown\r\n",
     "too.many.connections@example.org", V::Undeliverable, R::MailboxNotFound, ""},
    {"550 5.1.1 <starttls@example.org>: Recipient address rejected: User unknown\r\n",
     "starttls@example.org", V::Undeliverable, R::MailboxNotFound, ""},
    // The server's own words still count beside an echo.
    {"554 5.7.1 <x@example.org>: Client host rejected: blocked using zen.spamhaus.org\r\n",
     "x@example.org", V::Unknown, R::Blocked, "S"},
    {"450 4.2.0 <greylist@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.org.html\r\n",
     "greylist@example.org", V::Unknown, R::Greylisted, "R"},
    {"550 5.7.1 Rejected, see <https://www.spamhaus.org/query/ip/192.0.2.1>\r\n", "x@example.org",
     V::Unknown, R::Blocked, "S"},
};

TEST(RealReplies, EchoedAddressesAreNotTheServersWords) {
  for (const EchoCase& k : kEchoCases) {
    const auto reply = smtp::parse_reply(k.wire);
    ASSERT_TRUE(reply.has_value()) << k.wire;
    smtp::Outcome o;
    o.stage = RCPT;
    o.reply = *reply;
    const Classification c = classify(o, Echoes{k.recipient, "verify@probe.example.net", "probe"});
    EXPECT_EQ(c.verdict, k.verdict)
        << k.wire << "got " << to_string(c.verdict) << "/" << to_string(c.reason);
    EXPECT_EQ(c.reason, k.reason) << k.wire << "got " << to_string(c.reason);
    EXPECT_EQ(flags_of(c), k.flags) << k.wire;
  }
}

// Our sender and our HELO name, echoed at MAIL FROM and RCPT.
TEST(RealReplies, EchoedSenderAndHeloName) {
  const Echoes ours{"x@example.org", "bounce@dnsbl-watch.example", "blocklist-probe.example.net"};
  smtp::Outcome o;
  o.stage = RCPT;
  o.reply = *smtp::parse_reply(
      "550 5.1.1 User unknown; client said EHLO blocklist-probe.example.net\r\n");
  EXPECT_EQ(classify(o, ours).reason, R::MailboxNotFound);
  o.reply = *smtp::parse_reply("550 No such user (from dnsbl-watch.example)\r\n");
  EXPECT_EQ(classify(o, ours).reason, R::MailboxNotFound);
  o.stage = MAIL;
  o.reply =
      *smtp::parse_reply("451 4.3.0 <bounce@dnsbl-watch.example>: Temporary lookup failure\r\n");
  const auto c = classify(o, ours);
  EXPECT_EQ(c.reason, R::TemporaryFailure);
  EXPECT_FALSE(c.source_blocked);
}

// Postfix reject_non_fqdn_helo_hostname with smtpd_delay_reject = yes (the default) refuses our
// HELO name at RCPT TO, echoing it: a refusal of our identity (docs/identity.md), never a
// verdict on the mailbox, whatever words our HELO name holds.
TEST(RealReplies, PostfixNonFqdnHeloAtRcptIsOurIdentity) {
  for (const char* helo : {"vm", "localhost", "unknown-user", "mailbox-unavailable"}) {
    smtp::Outcome o;
    o.stage = RCPT;
    o.reply = *smtp::parse_reply("504 5.5.2 <" + std::string(helo) +
                                 ">: Helo command rejected: need fully-qualified hostname\r\n");
    const Classification c = classify(o, Echoes{"alice@example.org", "", helo});
    EXPECT_EQ(c.verdict, V::Unknown) << helo;
    EXPECT_EQ(c.reason, R::Blocked) << helo;
    EXPECT_TRUE(c.source_blocked) << helo;
  }
}

// The memo (ClassifyMemo) answers what classify() answers, for every reply of the corpus under
// several sets of echoes, asked in turns so that entries are both made and found.
TEST(ClassifyMemo, SameAnswersAsClassify) {
  const Echoes sets[] = {
      {"alice@example.org", "", "probe"},
      {"x@dnsbl-watch.example", "verify@probe.example.net", "probe"},
      {"x@example.org", "bounce@dnsbl-watch.example", "blocklist-probe.example.net"},
      {"graylist@example.org", "verify@probe.example.net", "vm"},
  };
  std::vector<smtp::Outcome> outcomes;
  for (const Case& k : kCases) {
    smtp::Outcome o;
    o.stage = k.stage;
    o.reply = *smtp::parse_reply(k.wire);
    outcomes.push_back(o);
  }
  for (const EchoCase& k : kEchoCases) {
    smtp::Outcome o;
    o.stage = RCPT;
    o.reply = *smtp::parse_reply(k.wire);
    outcomes.push_back(o);
  }
  ClassifyMemo memo;
  for (int round = 0; round < 3; ++round)
    for (const auto& o : outcomes)
      for (const Echoes& e : sets)
        EXPECT_EQ(memo.classify(o, e), classify(o, e)) << o.reply.text() << " / " << e.recipient;
  EXPECT_GT(memo.hits(), 0u);
}

// One text, two recipient domains: the word that names the domain is an echo for one and the
// server's own word for the other. The memo keeps them apart.
TEST(ClassifyMemo, TheRecipientDomainIsPartOfTheAnswer) {
  smtp::Outcome o;
  o.stage = RCPT;
  o.reply = *smtp::parse_reply("550 5.1.1 Rejected: spamhaus.org\r\n");
  const Echoes echoed{"x@spamhaus.org", "", "probe"};
  const Echoes other{"x@example.org", "", "probe"};
  ASSERT_NE(classify(o, echoed), classify(o, other));  // the case this test is about
  ClassifyMemo memo;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(memo.classify(o, echoed), classify(o, echoed));
    EXPECT_EQ(memo.classify(o, other), classify(o, other));
  }
}

}  // namespace
}  // namespace mxp::verdict
