<?php

/**
 * Corporate Mailboxes autologin for Roundcube.
 *
 * A hand-off takes three steps in the user's browser, and one call server to server:
 *
 * 1. The product's page POSTs a one-time token here (_autologin, in the body: no URL or
 *    request log ever holds it). This plugin keeps the token with a random browser key in
 *    an HttpOnly cookie and sends the browser to the product's bind URL with the key's hash.
 * 2. The product binds the token to that key, but only for the browser that clicked (its
 *    own cookie) and only for the user the token was minted for, and sends the browser
 *    back here with a confirmation: an HMAC of the token and key hashes under the shared
 *    secret.
 * 3. This plugin checks the confirmation against its cookie before anything else. A
 *    request that does not carry one for this browser's cookie (a forged or foreign link,
 *    an <img> on another site, a link opened in another browser) is refused here, without
 *    calling the product and without touching the current Roundcube session.
 * 4. Only then does it redeem the token (POST to the product's /bridge/redeem with the
 *    shared secret in a header, the token, the browser key and the confirmation) and, if
 *    the product answers with a mailbox, end the current session and log in to that
 *    mailbox's IMAP server, sending through its SMTP server.
 * 5. The answer may name a target: a compose window (recipient and subject) or one message
 *    (folder and UID). Only the actions in TARGET_ACTIONS are opened, with their values
 *    checked again here; anything else opens the inbox. The target never travels in a
 *    URL of the hand-off: it is kept with the token on the product's side and, here, in
 *    the session until the compose window takes it.
 *
 * Roundcube does not check a host that a plugin supplies in the authenticate hook, so
 * the IMAP and SMTP hosts come ONLY from the product's answer (which only ever names
 * configured mail servers), never from this request. Requests without a hand-off leave
 * Roundcube's own login form untouched.
 */
class corporate_autologin extends rcube_plugin
{
    // No $task filter: the plugin must also run when a session already exists
    // (opening a second mailbox in the same browser switches the session).

    const TOKEN_PATTERN = '/^[A-Za-z0-9_-]{16,128}$/';
    const HEX64_PATTERN = '/^[0-9a-f]{64}$/';
    const SESSION_KEY = 'corporate_autologin';
    const SECRET_HEADER = 'X-Bridge-Secret';
    const COOKIE = 'corporate_autologin';
    const COOKIE_SECONDS = 120;
    // What a hand-off may open besides the inbox.
    const TARGET_ACTIONS = ['compose', 'show'];

    /** @var array|null [token, browser key, confirmation] of this request, once the confirmation checked out */
    private $handoff;

    public function init()
    {
        $this->load_config();
        $this->add_hook('startup', [$this, 'startup']);
        $this->add_hook('authenticate', [$this, 'authenticate']);
        $this->add_hook('storage_init', [$this, 'storage_init']);
        $this->add_hook('smtp_connect', [$this, 'smtp_connect']);
        $this->add_hook('login_after', [$this, 'login_after']);
        $this->add_hook('message_compose', [$this, 'message_compose']);
    }

    /**
     * Step 1 (a posted token) or step 3 (a confirmation for this browser's cookie).
     */
    public function startup($args)
    {
        $token = rcube_utils::get_input_string('_autologin', rcube_utils::INPUT_POST);
        if (is_string($token) && preg_match(self::TOKEN_PATTERN, $token)) {
            $this->start_binding($token);  // does not return
        }
        $confirmation = rcube_utils::get_input_string('_autologin_bound', rcube_utils::INPUT_GET);
        if (!is_string($confirmation) || $confirmation === '') {
            return $args;
        }
        $cookie = isset($_COOKIE[self::COOKIE]) && is_string($_COOKIE[self::COOKIE]) ? $_COOKIE[self::COOKIE] : '';
        rcube_utils::setcookie(self::COOKIE, '', time() - 3600);  // one hand-off per cookie
        $parts = explode(':', $cookie);
        if (count($parts) === 2 && preg_match(self::TOKEN_PATTERN, $parts[0])
            && preg_match(self::HEX64_PATTERN, $parts[1]) && preg_match(self::HEX64_PATTERN, $confirmation)
            && hash_equals(self::confirmation($this->secret(), $parts[0], $parts[1]), $confirmation)
        ) {
            $this->handoff = [$parts[0], $parts[1], $confirmation];
            $args['task'] = 'login';
            $args['action'] = 'login';
        }
        else {
            // Not a hand-off this browser started: nothing is sent to the product, and whatever
            // session this browser has stays as it is.
            rcmail::get_instance()->output->show_message($this->message_for('not_this_browser'), 'warning');
        }
        return $args;
    }

    /**
     * The product's confirmation that a token was bound to a browser key (see roundcube_bridge/tokens.py).
     */
    public static function confirmation($secret, $token, $browser_key)
    {
        return hash_hmac('sha256', 'bound:' . hash('sha256', $token) . ':' . hash('sha256', $browser_key), $secret);
    }

    /**
     * Keep the token with a new browser key in a cookie and send the browser to the product's bind step.
     */
    private function start_binding($token)
    {
        $rcmail = rcmail::get_instance();
        $bind_url = (string) $rcmail->config->get('corporate_autologin_bind_url');
        if ($bind_url === '' || $this->secret() === '') {
            rcube::write_log('errors', 'corporate_autologin: corporate_autologin_bind_url or _secret is not configured');
            $rcmail->output->show_message($this->message_for('unreachable'), 'error');
            return;
        }
        $key = bin2hex(random_bytes(32));
        rcube_utils::setcookie(self::COOKIE, $token . ':' . $key, time() + self::COOKIE_SECONDS);
        $separator = strpos($bind_url, '?') === false ? '?' : '&';
        header('Cache-Control: no-store');
        header('Referrer-Policy: no-referrer');
        header('Location: ' . $bind_url . $separator . 'browser=' . hash('sha256', $key), true, 303);
        exit;
    }

    private function secret()
    {
        return (string) rcmail::get_instance()->config->get('corporate_autologin_secret');
    }

    /**
     * Redeem the confirmed hand-off and fill in the mailbox's login; without one, do nothing.
     */
    public function authenticate($args)
    {
        if ($this->handoff === null) {
            return $args;
        }
        $rcmail = rcmail::get_instance();
        list($token, $key, $confirmation) = $this->handoff;
        $this->handoff = null;

        list($answer, $reason) = $this->redeem($token, $key, $confirmation);

        // Only now, with the outcome known, does the current session end: on success the new mailbox
        // replaces it; on failure of a hand-off this browser itself started, the user must not silently
        // stay in another mailbox than the one they clicked. A request that is not such a hand-off
        // never gets here (see startup).
        $rcmail->kill_session();

        if ($answer === null) {
            $args['valid'] = false;
            $args['abort'] = true;
            $args['error'] = $this->message_for($reason);
            return $args;
        }

        $imap = $this->host_uri($answer['imap_security'], $answer['imap_host'], $answer['imap_port'], true);
        $smtp = $this->host_uri($answer['smtp_security'], $answer['smtp_host'], $answer['smtp_port'], false);
        $xoauth2 = ($answer['auth_type'] ?? 'password') === 'xoauth2';

        // Kept in the session for storage_init and smtp_connect on every later request.
        // No secret here: SMTP uses Roundcube's own (encrypted) session password via %p.
        $_SESSION[self::SESSION_KEY] = [
            'account' => (int) $answer['account_id'],
            'smtp_host' => $smtp,
            'smtp_user' => !empty($answer['smtp_auth']) ? (string) $answer['login'] : '',
            'smtp_auth' => !empty($answer['smtp_auth']),
            'xoauth2' => $xoauth2,
            'verify' => !isset($answer['validate_cert']) || !empty($answer['validate_cert']),
            'target' => $this->valid_target($answer['target'] ?? null),
        ];
        if ($xoauth2 && strlen($answer['password']) > (int) $rcmail->config->get('login_password_maxlen', 1024)) {
            $rcmail->config->set('login_password_maxlen', strlen($answer['password']));
        }

        $args['user'] = (string) $answer['login'];
        $args['pass'] = (string) $answer['password'];
        $args['host'] = $imap;
        $args['cookiecheck'] = false;
        $args['valid'] = true;
        $args['abort'] = false;
        $args['error'] = null;
        return $args;
    }

    /**
     * For sessions opened by this plugin: the auth type and certificate checks of that mailbox.
     */
    public function storage_init($args)
    {
        $state = $_SESSION[self::SESSION_KEY] ?? null;
        if (!is_array($state)) {
            return $args;
        }
        if (!empty($state['xoauth2'])) {
            $args['auth_type'] = 'XOAUTH2';
        }
        if (empty($state['verify'])) {
            $args['socket_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]];
        }
        return $args;
    }

    /**
     * For sessions opened by this plugin: send through that mailbox's own SMTP server.
     */
    public function smtp_connect($args)
    {
        $state = $_SESSION[self::SESSION_KEY] ?? null;
        if (!is_array($state)) {
            return $args;
        }
        $args['smtp_host'] = $state['smtp_host'];
        if (!empty($state['smtp_auth'])) {
            $args['smtp_user'] = $state['smtp_user'];
            $args['smtp_pass'] = '%p';  // Roundcube's encrypted session copy of the mailbox secret
            if (!empty($state['xoauth2'])) {
                $args['smtp_auth_type'] = 'XOAUTH2';
            }
        } else {
            $args['smtp_user'] = '';
            $args['smtp_pass'] = '';
        }
        if (empty($state['verify'])) {
            $args['smtp_conn_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]];
        }
        return $args;
    }

    /**
     * Right after a hand-off's login: go to the compose window or the message it names, else the inbox.
     */
    public function login_after($args)
    {
        $state = $_SESSION[self::SESSION_KEY] ?? null;
        $target = is_array($state) ? ($state['target'] ?? null) : null;
        if (!is_array($target)) {
            return $args;
        }
        if ($target['action'] === 'compose') {
            // The recipient and subject stay in the session: message_compose fills them in.
            $args['_action'] = 'compose';
        }
        elseif ($target['action'] === 'show') {
            $args['_action'] = 'show';
            $args['_mbox'] = $target['mbox'];
            $args['_uid'] = $target['uid'];
            unset($_SESSION[self::SESSION_KEY]['target']);
        }
        return $args;
    }

    /**
     * The first compose window after a "Write e-mail" hand-off gets its recipient and subject, once.
     */
    public function message_compose($args)
    {
        $target = $_SESSION[self::SESSION_KEY]['target'] ?? null;
        if (!is_array($target) || $target['action'] !== 'compose') {
            return $args;
        }
        unset($_SESSION[self::SESSION_KEY]['target']);
        $args['param']['to'] = $target['to'];
        if ($target['subject'] !== '') {
            $args['param']['subject'] = $target['subject'];
        }
        return $args;
    }

    /**
     * The redeem answer's target, checked: an allowed action with values of the right shape, else null.
     */
    private function valid_target($target)
    {
        if ($target === null) {
            return null;
        }
        $action = is_array($target) && isset($target['action']) && is_string($target['action'])
            ? $target['action'] : '';
        if (!in_array($action, self::TARGET_ACTIONS, true)) {
            // Logged without the values: the inbox opens instead.
            rcube::write_log('errors', 'corporate_autologin: a hand-off target that is not allowed; opening the inbox');
            return null;
        }
        if ($action === 'compose') {
            $to = $target['to'] ?? null;
            $subject = $target['subject'] ?? '';
            if (is_string($to) && $to !== '' && strlen($to) <= 2000 && is_string($subject) && strlen($subject) <= 2000
                && !preg_match('/[\x00-\x1f\x7f]/', $to . $subject)
            ) {
                return ['action' => 'compose', 'to' => $to, 'subject' => $subject];
            }
        }
        else {
            $folder = $target['folder'] ?? null;
            $uid = $target['uid'] ?? null;
            if (is_string($folder) && $folder !== '' && strlen($folder) <= 1000 && !preg_match('/[\x00-\x1f\x7f]/', $folder)
                && is_int($uid) && $uid > 0 && $uid <= 4294967295
            ) {
                // Roundcube names folders in IMAP's modified UTF-7; the product sends them as the server lists them, decoded.
                return ['action' => 'show', 'mbox' => rcube_charset::convert($folder, 'UTF-8', 'UTF7-IMAP'), 'uid' => $uid];
            }
        }
        rcube::write_log('errors', 'corporate_autologin: a hand-off target with unusable values; opening the inbox');
        return null;
    }

    /**
     * POST the hand-off to the product; returns [answer, null] or [null, reason].
     */
    private function redeem($token, $key, $confirmation)
    {
        $rcmail = rcmail::get_instance();
        $url = (string) $rcmail->config->get('corporate_autologin_url');
        $secret = $this->secret();
        if ($url === '' || $secret === '') {
            rcube::write_log('errors', 'corporate_autologin: corporate_autologin_url or _secret is not configured');
            return [null, 'unreachable'];
        }
        try {
            $client = $rcmail->get_http_client([
                'timeout' => (int) $rcmail->config->get('corporate_autologin_timeout', 10),
                'http_errors' => false,
                'allow_redirects' => false,
            ]);
            $response = $client->post($url, [
                'headers' => [self::SECRET_HEADER => $secret, 'Accept' => 'application/json'],
                'json' => ['token' => $token, 'browser' => $key, 'confirmation' => $confirmation,
                           'client' => rcube_utils::remote_addr()],
            ]);
        } catch (\Throwable $e) {
            // The exception text names the URL only; neither the token nor the secret is logged.
            rcube::write_log('errors', 'corporate_autologin: redeem call failed: ' . get_class($e));
            return [null, 'unreachable'];
        }
        $status = $response->getStatusCode();
        $body = json_decode((string) $response->getBody(), true);
        if ($status !== 200) {
            $reason = is_array($body) && isset($body['reason']) && is_string($body['reason']) ? $body['reason'] : 'http';
            if ($status === 401) {
                rcube::write_log('errors', 'corporate_autologin: the product refused the shared secret');
            }
            return [null, $reason];
        }
        if (!is_array($body) || empty($body['ok']) || !$this->valid_answer($body)) {
            rcube::write_log('errors', 'corporate_autologin: unusable redeem answer');
            return [null, 'http'];
        }
        return [$body, null];
    }

    private function valid_answer($a)
    {
        foreach (['login', 'password', 'imap_host', 'smtp_host'] as $key) {
            if (!isset($a[$key]) || !is_string($a[$key]) || $a[$key] === '') {
                return false;
            }
        }
        foreach (['imap_host', 'smtp_host'] as $key) {
            // Plain host names or bracketed IPv6 only: nothing Roundcube would expand (%h) or reinterpret.
            if (!preg_match('/^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\])$/', $a[$key])) {
                return false;
            }
        }
        foreach (['imap_port', 'smtp_port'] as $key) {
            if (!isset($a[$key]) || !is_int($a[$key]) || $a[$key] < 1 || $a[$key] > 65535) {
                return false;
            }
        }
        foreach (['imap_security', 'smtp_security'] as $key) {
            if (!isset($a[$key]) || !in_array($a[$key], ['ssl', 'starttls', 'none'], true)) {
                return false;
            }
        }
        return true;
    }

    /**
     * "ssl://host:993", "tls://host:143" (STARTTLS) or "host:143".
     */
    private function host_uri($security, $host, $port, $imap)
    {
        $prefix = $security === 'ssl' ? 'ssl://' : ($security === 'starttls' ? 'tls://' : '');
        return $prefix . $host . ':' . (int) $port;
    }

    private function message_for($reason)
    {
        switch ($reason) {
            case 'used':
            case 'expired':
            case 'unknown':
                return 'This mailbox link has expired or was already used. '
                    . 'Open the mailbox again from Corporate Mailboxes.';
            case 'wrong_browser':
            case 'not_this_browser':
                return 'This mailbox link was not opened from Corporate Mailboxes in this browser, or it belongs to '
                    . 'another person. Open the mailbox again from Corporate Mailboxes.';
            case 'too_many':
                return 'Too many mailboxes were opened in a short time. Wait a minute, then open the mailbox again '
                    . 'from Corporate Mailboxes.';
            case 'revoked':
            case 'no_grant':
                return 'You are no longer allowed to open this mailbox. Ask an administrator of Corporate Mailboxes.';
            case 'disabled':
            case 'no_secret':
            case 'bad_server':
                return 'This mailbox cannot be opened: its settings in Corporate Mailboxes are incomplete. '
                    . 'Ask an administrator.';
            case 'reconnect':
                return 'This mailbox signs in with OAuth and its authorization has expired or was revoked. '
                    . 'Ask an administrator to reconnect the account in Corporate Mailboxes.';
            case 'oauth_unavailable':
                return 'The sign-in provider of this mailbox cannot be reached right now. Try again in a few minutes.';
            case 'throttled':
                return 'Too many invalid mailbox links. Wait a few minutes, then open the mailbox again '
                    . 'from Corporate Mailboxes.';
            default:
                return 'Webmail could not check this mailbox link with Corporate Mailboxes. '
                    . 'Ask an administrator to check the autologin settings.';
        }
    }
}
