// The reply table: one row per reply kind, one column per style. Texts follow published
// transcripts of each server family (Postfix smtpd/postgrey, Exchange Online, Gmail's gsmtp,
// Yahoo's mta); enhanced codes follow RFC 3463 where the real server sends them (Yahoo's
// "554 delivery error: dd ..." famously carries none).
#include "styles.hpp"

#include <array>

namespace mxfarm {

namespace {

using Row = std::array<std::string_view, kStyleCount>;  // postfix, exchange, gmail, yahoo

constexpr std::array<Row, kReplyKinds> kTable = {{
    // Banner
    {"220 {host} ESMTP Postfix (Debian/GNU)", "220 {host} Microsoft ESMTP MAIL Service ready",
     "220 {host} ESMTP {id} - gsmtp", "220 {host} ESMTP ready"},
    // BannerBlocked
    {"554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/{ip}",
     "554 5.7.606 Access denied, banned sending IP [{ip}]. To request removal from this list "
     "please visit https://sender.office.com/ and follow the directions.",
     "554-5.7.1 [{ip}] The IP you're using to send mail is not authorized to\r\n"
     "554-5.7.1 send email directly to our servers. Please use the SMTP relay at your\r\n"
     "554 5.7.1 service provider instead. {id} - gsmtp",
     "553 5.7.1 [BL21] Connections will not be accepted from {ip}, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes"},
    // TooManyConns
    {"421 4.7.0 {host} Error: too many connections from {ip}",
     "421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
     "closing transmission channel",
     "421 4.7.0 Try again later, closing connection. {id} - gsmtp",
     "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
    // TooFastConns
    {"421 4.7.0 {host} Error: too many connections from {ip}",
     "421 4.7.0 Too many connections from this IP address, try again later",
     "421-4.7.28 [{ip}] Our system has detected an unusual rate of\r\n"
     "421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n"
     "421 4.7.28 users from spam, mail sent from your IP address has been rate limited. {id} - "
     "gsmtp",
     "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
    // EhloGreeting
    {"{host}", "{host} Hello [{ip}]", "{host} at your service, [{ip}]", "{host} Hello [{ip}]"},
    // Helo
    {"250 {host}", "250 {host} Hello [{ip}]", "250 {host} at your service",
     "250 {host} Hello [{ip}]"},
    // MailOk
    {"250 2.1.0 Ok", "250 2.1.0 Sender OK", "250 2.1.0 OK {id} - gsmtp", "250 sender <{from}> ok"},
    // RcptOk
    {"250 2.1.5 Ok", "250 2.1.5 Recipient OK", "250 2.1.5 OK {id} - gsmtp",
     "250 recipient <{rcpt}> ok"},
    // RcptUnknown
    {"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {rcpt} not found by SMTP address "
     "lookup",
     "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
     "550-5.1.1 unnecessary spaces. Learn more at\r\n"
     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser {id} - gsmtp",
     "554 delivery error: dd This user doesn't have a {domain} account ({rcpt}) [0] - "
     "mta1009.mail.bf1.yahoo.com"},
    // RcptFull
    {"452 4.2.2 <{rcpt}>: Recipient address rejected: Mailbox full",
     "452 4.2.2 The recipient's mailbox is full and can't accept messages now. Please try "
     "resending this message later, or contact the recipient directly.",
     "452-4.2.2 The recipient's inbox is out of storage space. Please direct the\r\n"
     "452-4.2.2 recipient to\r\n"
     "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp {id} - gsmtp",
     "452 4.2.2 Mailbox over quota, try again later"},
    // RcptFullPerm
    {"552 5.2.2 <{rcpt}>: Recipient address rejected: Mailbox full",
     "552 5.2.2 STOREDRV.Deliver; mailbox full",
     "552-5.2.2 The recipient's inbox is out of storage space and inactive. Please direct\r\n"
     "552-5.2.2 the recipient to\r\n"
     "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm {id} - gsmtp",
     "552 5.2.2 Mailbox is full"},
    // RcptDisabled
    {"550 5.2.1 <{rcpt}>: Recipient address rejected: Mailbox disabled, not accepting messages",
     "550 5.2.1 STOREDRV.Deliver; mailbox disabled, not accepting messages",
     "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\r\n"
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser {id} - gsmtp",
     "554 delivery error: dd Sorry your message to {rcpt} cannot be delivered. This mailbox is "
     "disabled (554.30). - mta1009.mail.bf1.yahoo.com"},
    // Greylisted
    {"450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/{domain}.html",
     "451 4.7.1 Greylisted, please try again later",
     "451-4.7.1 Greylisted: this message was temporarily deferred. Please try\r\n"
     "451 4.7.1 again later. {id} - gsmtp",
     "451 4.7.1 Greylisted, please try again later"},
    // Blocked
    {"554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/{ip}",
     "550 5.7.606 Access denied, banned sending IP [{ip}]. To request removal from this list "
     "please visit https://sender.office.com/ and follow the directions.",
     "550-5.7.1 [{ip}] The IP you're using to send mail is not authorized to\r\n"
     "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\r\n"
     "550 5.7.1 service provider instead. {id} - gsmtp",
     "553 5.7.1 [BL21] Connections will not be accepted from {ip}, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes"},
    // RelayDenied
    {"554 5.7.1 <{rcpt}>: Relay access denied",
     "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
     "550 5.7.1 Relaying denied. {id} - gsmtp", "554 5.7.1 Relay access denied"},
    // TooManyRcpts
    {"452 4.5.3 Error: too many recipients", "452 4.5.3 Too many recipients",
     "452-4.5.3 Your message has too many recipients. For more information regarding\r\n"
     "452 4.5.3 Google's sending limits, visit https://support.google.com/mail/?p="
     "TooManyRecipientsError {id} - gsmtp",
     "452 4.5.3 Too many recipients"},
    // TooManyErrors
    {"421 4.7.0 {host} Error: too many errors",
     "421 4.7.0 Too many errors on this connection, closing transmission channel",
     "421 4.7.0 Too many errors, closing connection. {id} - gsmtp",
     "421 4.7.0 Too many invalid commands - closing connection"},
    // RsetOk
    {"250 2.0.0 Ok", "250 2.0.0 Resetting", "250 2.1.5 Flushed {id} - gsmtp", "250 reset ok"},
    // NoopOk
    {"250 2.0.0 Ok", "250 2.0.0 OK", "250 2.0.0 OK {id} - gsmtp", "250 ok"},
    // QuitOk
    {"221 2.0.0 Bye", "221 2.0.0 Service closing transmission channel",
     "221 2.0.0 closing connection {id} - gsmtp", "221 Service Closing transmission"},
    // DataStart
    {"354 End data with <CR><LF>.<CR><LF>", "354 Start mail input; end with <CRLF>.<CRLF>",
     "354  Go ahead {id} - gsmtp", "354 Start Mail. End with CRLF.CRLF"},
    // DataOk
    {"250 2.0.0 Ok: queued as {id}", "250 2.6.0 <{id}@{host}> Queued mail for delivery",
     "250 2.0.0 OK  {id} - gsmtp", "250 ok dirdel"},
    // DataNoRcpt
    {"554 5.5.1 Error: no valid recipients", "503 5.5.2 Need rcpt command",
     "503 5.5.1 RCPT first. {id} - gsmtp", "503 5.5.1 Need RCPT command"},
    // NeedHelo
    {"503 5.5.1 Error: send HELO/EHLO first", "503 5.5.2 Send hello first",
     "503 5.5.1 EHLO/HELO first. {id} - gsmtp", "503 5.5.1 Send HELO/EHLO first"},
    // NeedMail
    {"503 5.5.1 Error: need MAIL command", "503 5.5.2 Need mail command",
     "503 5.5.1 MAIL first. {id} - gsmtp", "503 5.5.1 Need MAIL command"},
    // NestedMail
    {"503 5.5.1 Error: nested MAIL command", "503 5.5.2 Sender already specified",
     "503 5.5.1 Nested MAIL command. {id} - gsmtp", "503 5.5.1 Nested MAIL command"},
    // BadSequence
    {"503 5.5.1 Bad sequence of commands", "503 5.5.1 Bad sequence of commands",
     "503 5.5.1 Bad sequence of commands. {id} - gsmtp", "503 5.5.1 Bad sequence of commands"},
    // SyntaxHelo
    {"501 5.5.4 Syntax: HELO hostname", "501 5.5.4 Invalid domain name",
     "555 5.5.2 Syntax error. {id} - gsmtp", "501 5.5.4 Syntax error in parameters"},
    // SyntaxMail
    {"501 5.5.4 Syntax: MAIL FROM:<address>", "501 5.5.4 Invalid arguments",
     "555 5.5.2 Syntax error. {id} - gsmtp", "501 5.5.4 Syntax error in parameters"},
    // SyntaxRcpt
    {"501 5.1.3 Bad recipient address syntax", "501 5.1.3 Invalid address",
     "553-5.1.3 The recipient address is not a valid RFC 5321\r\n"
     "553 5.1.3 address. {id} - gsmtp",
     "501 5.1.3 Bad recipient address syntax"},
    // Unrecognized
    {"502 5.5.2 Error: command not recognized", "500 5.3.3 Unrecognized command",
     "502 5.5.1 Unrecognized command. {id} - gsmtp", "500 5.5.1 Unrecognized command"},
    // NotImplemented
    {"502 5.5.1 Error: command not implemented", "500 5.3.3 Unrecognized command",
     "502 5.5.1 Unrecognized command. {id} - gsmtp", "500 5.5.1 Unrecognized command"},
    // TlsUnavailable
    {"454 4.7.0 TLS not available due to local problem", "454 4.7.0 TLS not available",
     "454 4.7.0 TLS not available due to local problem. {id} - gsmtp",
     "454 4.7.0 TLS not available due to local problem"},
    // TlsReady
    {"220 2.0.0 Ready to start TLS", "220 2.0.0 SMTP server ready", "220 2.0.0 Ready to start TLS",
     "220 2.0.0 Ready to start TLS"},
    // TlsRequired
    {"530 5.7.0 Must issue a STARTTLS command first",
     "530 5.7.0 Must issue a STARTTLS command first",
     "530 5.7.0 Must issue a STARTTLS command first. {id} - gsmtp",
     "530 5.7.0 Must issue a STARTTLS command first"},
    // TlsActive
    {"554 5.5.1 Error: TLS already active", "503 5.5.2 TLS already active",
     "503 5.5.1 TLS already active. {id} - gsmtp", "503 5.5.1 TLS already active"},
    // Vrfy
    {"502 5.5.1 VRFY command is disabled", "252 2.1.5 Cannot VRFY user",
     "252 2.1.5 Send some mail, I'll try my best {id} - gsmtp", "502 5.5.1 VRFY not supported"},
    // LineTooLong
    {"500 5.5.2 Error: line too long", "500 5.5.2 Line too long",
     "500 5.5.2 Line too long. {id} - gsmtp", "500 5.5.2 Line too long"},
    // NullSenderRefused: servers set to refuse <> (RFC 5321 §4.5.5 says they must not)
    {"550 5.7.1 <>: null sender not accepted", "550 5.7.1 Null sender not allowed",
     "550 5.7.1 Null sender not accepted. {id} - gsmtp", "553 5.7.1 Null sender not accepted"},
    // SenderRefused: Postfix's access(5) REJECT on the sender (reported at RCPT with
    // smtpd_delay_reject), Exchange's 5.1.8 "bad outbound sender"
    {"554 5.7.1 <{from}>: Sender address rejected: Access denied",
     "550 5.1.8 Access denied, bad outbound sender",
     "550 5.7.1 Sender address rejected. {id} - gsmtp", "553 5.1.8 Sender address rejected"},
}};

// EHLO keywords per style, in the order each server family lists them.
constexpr std::string_view kExtPostfix[] = {
    "PIPELINING",          "SIZE 10240000", "VRFY", "ETRN",     "STARTTLS",
    "ENHANCEDSTATUSCODES", "8BITMIME",      "DSN",  "SMTPUTF8", "CHUNKING"};
constexpr std::string_view kExtExchange[] = {"SIZE 37748736",       "PIPELINING", "DSN",
                                             "ENHANCEDSTATUSCODES", "STARTTLS",   "8BITMIME",
                                             "BINARYMIME",          "CHUNKING",   "SMTPUTF8"};
constexpr std::string_view kExtGmail[] = {
    "SIZE 157286400", "8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES",
    "PIPELINING",     "CHUNKING", "SMTPUTF8"};
constexpr std::string_view kExtYahoo[] = {"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                                          "SIZE 41943040", "STARTTLS"};

template <size_t N>
void add_exts(std::string& out, const std::string_view (&exts)[N], bool pipelining, bool starttls) {
  for (auto e : exts) {
    if (e == "PIPELINING" && !pipelining) continue;
    if (e == "STARTTLS" && !starttls) continue;
    out += "\r\n250-";
    out += e;
  }
}

}  // namespace

std::string_view reply_template(Style s, Rk k) {
  return kTable[static_cast<int>(k)][static_cast<int>(s)];
}

std::string ehlo_template(Style s, bool pipelining, bool starttls) {
  std::string out = "250-";
  out += reply_template(s, Rk::EhloGreeting);
  switch (s) {
    case Style::Postfix:
      add_exts(out, kExtPostfix, pipelining, starttls);
      break;
    case Style::Exchange:
      add_exts(out, kExtExchange, pipelining, starttls);
      break;
    case Style::Gmail:
      add_exts(out, kExtGmail, pipelining, starttls);
      break;
    case Style::Yahoo:
      add_exts(out, kExtYahoo, pipelining, starttls);
      break;
  }
  // The last line of a multi-line reply uses "250 " (RFC 5321 section 4.2.1).
  auto last = out.rfind("\r\n250-");
  if (last == std::string::npos) {
    out[3] = ' ';
  } else {
    out[last + 5] = ' ';
  }
  return out;
}

int expand_reply(std::string& out, std::string_view t, const ReplyVars& v) {
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find('{', i);
    if (open == std::string_view::npos) {
      out.append(t.substr(i));
      break;
    }
    out.append(t.substr(i, open - i));
    size_t close = t.find('}', open);
    std::string_view name = t.substr(open + 1, close - open - 1);
    if (name == "host") {
      out.append(v.host);
    } else if (name == "ip") {
      out.append(v.ip);
    } else if (name == "rcpt") {
      out.append(v.rcpt);
    } else if (name == "domain") {
      out.append(v.domain);
    } else if (name == "from") {
      out.append(v.from);
    } else if (name == "id") {
      out.append(v.id);
    }
    i = close + 1;
  }
  out.append("\r\n");
  return (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
}

}  // namespace mxfarm
