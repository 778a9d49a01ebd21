<?php

/**
 * Corporate Mailboxes autologin for Roundcube.
 *
 * The product sends the browser here with ?_autologin=<one-time token>. This
 * plugin redeems the token server-to-server (POST to the product's
 * /bridge/redeem with the shared secret in a header) and, only if the product
 * answers with a mailbox, logs in to that mailbox's IMAP server and sends
 * through its SMTP server.
 *
 * Roundcube does not check a host that a plugin supplies in the authenticate
 * hook, so the IMAP and SMTP hosts come ONLY from the product's answer (which
 * only ever names configured mail servers), never from this request.
 * Requests without a token leave Roundcube's own login form untouched.
 */
class corporate_autologin extends rcube_plugin
{
    // No $task filter: the plugin must also run when a session already exists
    // (opening a second mailbox in the same browser switches the session).

    const TOKEN_PATTERN = '/^[A-Za-z0-9_-]{16,128}$/';
    const SESSION_KEY = 'corporate_autologin';
    const SECRET_HEADER = 'X-Bridge-Secret';

    /** @var string|null the token of this request, once it has the right shape */
    private $token;

    public function init()
    {
        $this->load_config();
        $this->add_hook('startup', [$this, 'startup']);
        $this->add_hook('authenticate', [$this, 'authenticate']);
        $this->add_hook('storage_init', [$this, 'storage_init']);
        $this->add_hook('smtp_connect', [$this, 'smtp_connect']);
    }

    /**
     * A request carrying a well-formed token becomes a login request.
     */
    public function startup($args)
    {
        $token = rcube_utils::get_input_string('_autologin', rcube_utils::INPUT_GET);
        if (is_string($token) && preg_match(self::TOKEN_PATTERN, $token)) {
            $this->token = $token;
            $args['task'] = 'login';
            $args['action'] = 'login';
        }
        return $args;
    }

    /**
     * Redeem the token and fill in the mailbox's login; without a token, do nothing.
     */
    public function authenticate($args)
    {
        if ($this->token === null) {
            return $args;
        }
        $rcmail = rcmail::get_instance();
        $token = $this->token;
        $this->token = null;

        list($answer, $reason) = $this->redeem($token);

        // A hand-off always ends the current Roundcube session: on success the new
        // mailbox replaces it, on failure the user must not silently stay in another
        // mailbox than the one they clicked.
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
     * POST the token to the product; returns [answer, null] or [null, reason].
     */
    private function redeem($token)
    {
        $rcmail = rcmail::get_instance();
        $url = (string) $rcmail->config->get('corporate_autologin_url');
        $secret = (string) $rcmail->config->get('corporate_autologin_secret');
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
                'json' => ['token' => $token, 'client' => rcube_utils::remote_addr()],
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
