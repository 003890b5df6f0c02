/*
 * eq1tls.c - TLS beyond files, from C: CA, client certificate and key from memory buffers,
 * ALPN, an SNI override, certificate revocation lists, and a client key that only a signing
 * callback holds (signed here with OpenSSL's libcrypto, standing in for a PKCS#11 token).
 *
 *   eq1tls connect --host H --port P [options]   connect, then a QoS 1 round trip
 *       --ca FILE | --ca-data FILE                 trusted CAs from a file / read into memory
 *       --cert-data FILE --key-data FILE [--keypass PW]   client certificate from memory
 *       --cert FILE --key FILE [--keypass PW]      client certificate from files
 *       --signer-cert FILE --signer-key FILE [--signer-fail]
 *                                                  the chain goes to the library, the key stays
 *                                                  here, behind the signing callback
 *       --alpn a,b --server-name NAME --crl-file FILE --crl-data FILE
 *       --user U --pass P --timeout MS
 *     prints "STATUS <EQ1_STATUS_...> <detail>", then "SIGNER calls=<n> schemes=<list>" and,
 *     after a successful round trip, "ROUNDTRIP ok".
 *
 *   eq1tls badinput <pki dir>                    argument checks of the TLS setters
 *     prints one line per check and "SUMMARY: <n> checks, <f> failed".
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdatomic.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "test_util.h"

#define BAD_UTF8 "\xff\xfe"

/* ---- files ----------------------------------------------------------------------------- */

struct buffer {
	uint8_t *data;
	size_t len;
};

static struct buffer read_file(const char *path)
{
	struct buffer b = { NULL, 0 };
	FILE *f = fopen(path, "rb");
	REQUIRE(f != NULL, "cannot open %s", path);
	REQUIRE(fseek(f, 0, SEEK_END) == 0, "cannot seek %s", path);
	long size = ftell(f);
	REQUIRE(size >= 0, "cannot size %s", path);
	rewind(f);
	b.data = malloc((size_t)size + 1);
	REQUIRE(b.data != NULL, "out of memory");
	b.len = fread(b.data, 1, (size_t)size, f);
	REQUIRE(b.len == (size_t)size, "short read of %s", path);
	fclose(f);
	return b;
}

/* ---- the signing callback (the "token") ------------------------------------------------ */

struct token {
	EVP_PKEY *key;
	bool fail;
	atomic_int calls;
	char schemes[256];
};

static const char *scheme_name(eq1_tls_signature_scheme s)
{
	switch (s) {
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA256: return "rsa_pkcs1_sha256";
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA384: return "rsa_pkcs1_sha384";
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA512: return "rsa_pkcs1_sha512";
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA256: return "rsa_pss_sha256";
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA384: return "rsa_pss_sha384";
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA512: return "rsa_pss_sha512";
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P256_SHA256: return "ecdsa_p256_sha256";
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P384_SHA384: return "ecdsa_p384_sha384";
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P521_SHA512: return "ecdsa_p521_sha512";
	case EQ1_TLS_SIGNATURE_SCHEME_ED25519: return "ed25519";
	}
	return "unknown";
}

static bool token_sign(void *user_data, eq1_tls_signature_scheme scheme, const uint8_t *data,
		       size_t data_len, uint8_t *signature, size_t signature_capacity,
		       size_t *signature_len)
{
	struct token *t = user_data;
	atomic_fetch_add(&t->calls, 1);
	if (strlen(t->schemes) + 32 < sizeof t->schemes) {
		if (t->schemes[0])
			strcat(t->schemes, ",");
		strcat(t->schemes, scheme_name(scheme));
	}
	if (t->fail)
		return false;
	const EVP_MD *md = NULL;
	int padding = 0;
	switch (scheme) {
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA256: md = EVP_sha256(); padding = RSA_PKCS1_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA384: md = EVP_sha384(); padding = RSA_PKCS1_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PKCS1_SHA512: md = EVP_sha512(); padding = RSA_PKCS1_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA256: md = EVP_sha256(); padding = RSA_PKCS1_PSS_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA384: md = EVP_sha384(); padding = RSA_PKCS1_PSS_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_RSA_PSS_SHA512: md = EVP_sha512(); padding = RSA_PKCS1_PSS_PADDING; break;
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P256_SHA256: md = EVP_sha256(); break;
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P384_SHA384: md = EVP_sha384(); break;
	case EQ1_TLS_SIGNATURE_SCHEME_ECDSA_P521_SHA512: md = EVP_sha512(); break;
	case EQ1_TLS_SIGNATURE_SCHEME_ED25519: break;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok = ctx != NULL && EVP_DigestSignInit(ctx, &pctx, md, NULL, t->key) == 1;
	if (ok && padding != 0)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, padding) == 1;
	if (ok && padding == RSA_PKCS1_PSS_PADDING)
		ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
	size_t len = signature_capacity;
	if (ok)
		ok = EVP_DigestSign(ctx, signature, &len, data, data_len) == 1;
	EVP_MD_CTX_free(ctx);
	if (ok)
		*signature_len = len;
	return ok;
}

/* ---- connect --------------------------------------------------------------------------- */

static atomic_int received;

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	(void)msg;
	atomic_fetch_add(&received, 1);
}

static void print_status(eq1_status status)
{
	char detail[1024] = "";
	if (status != EQ1_STATUS_OK)
		eq1_last_error_message(detail, sizeof detail);
	const char *name = eq1_status_str(status);
	int len = (int)strcspn(name, ":");
	printf("STATUS %.*s %s\n", len, name, detail);
	fflush(stdout);
}

/* Sets an option; a refusal is printed as the outcome and ends the program. */
static void setup(const char *what, eq1_status status)
{
	if (status == EQ1_STATUS_OK)
		return;
	printf("SETUP %s\n", what);
	print_status(status);
	exit(0);
}

static int connect_mode(int argc, char **argv)
{
	const char *host = "127.0.0.1", *ca = NULL, *ca_data = NULL, *cert = NULL, *key = NULL;
	const char *cert_data = NULL, *key_data = NULL, *keypass = NULL, *alpn = NULL;
	const char *server_name = NULL, *crl_file = NULL, *crl_data = NULL, *user = NULL;
	const char *pass = NULL, *signer_cert = NULL, *signer_key = NULL;
	int port = 0, timeout = 10000, signer_fail = 0;
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'c' },
		{ "ca-data", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'e' },
		{ "key", required_argument, NULL, 'k' },
		{ "cert-data", required_argument, NULL, 'E' },
		{ "key-data", required_argument, NULL, 'K' },
		{ "keypass", required_argument, NULL, 'w' },
		{ "alpn", required_argument, NULL, 'a' },
		{ "server-name", required_argument, NULL, 's' },
		{ "crl-file", required_argument, NULL, 'r' },
		{ "crl-data", required_argument, NULL, 'R' },
		{ "user", required_argument, NULL, 'u' },
		{ "pass", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 't' },
		{ "signer-cert", required_argument, NULL, 'S' },
		{ "signer-key", required_argument, NULL, 'Y' },
		{ "signer-fail", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': ca = optarg; break;
		case 'C': ca_data = optarg; break;
		case 'e': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'E': cert_data = optarg; break;
		case 'K': key_data = optarg; break;
		case 'w': keypass = optarg; break;
		case 'a': alpn = optarg; break;
		case 's': server_name = optarg; break;
		case 'r': crl_file = optarg; break;
		case 'R': crl_data = optarg; break;
		case 'u': user = optarg; break;
		case 'P': pass = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'S': signer_cert = optarg; break;
		case 'Y': signer_key = optarg; break;
		case 'F': signer_fail = 1; break;
		case 0: break;
		default: return 2;
		}
	}

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "options_new");
	setup("broker", eq1_mqtt_options_set_broker(o, host, port));
	setup("reconnect", eq1_mqtt_options_set_reconnect(o, false, 500, 30000));
	setup("timeout", eq1_mqtt_options_set_connect_timeout(o, timeout));
	if (user)
		setup("credentials", eq1_mqtt_options_set_credentials(o, user, pass));
	if (ca_data) {
		struct buffer b = read_file(ca_data);
		setup("ca_data", eq1_mqtt_options_set_tls_ca_data(o, b.data, b.len));
		free(b.data);
	} else {
		setup("tls", eq1_mqtt_options_set_tls(o, ca));
	}
	if (cert_data) {
		struct buffer c = read_file(cert_data), k = read_file(key_data);
		setup("client_cert_data", eq1_mqtt_options_set_tls_client_cert_data(
						  o, c.data, c.len, k.data, k.len, keypass));
		free(c.data);
		free(k.data);
	}
	if (cert)
		setup("client_cert", eq1_mqtt_options_set_tls_client_cert(o, cert, key, keypass));
	struct token token = { NULL, signer_fail != 0, 0, "" };
	if (signer_cert) {
		FILE *f = fopen(signer_key, "r");
		REQUIRE(f != NULL, "cannot open %s", signer_key);
		token.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		REQUIRE(token.key != NULL, "cannot read the signer key %s", signer_key);
		struct buffer c = read_file(signer_cert);
		setup("client_signer", eq1_mqtt_options_set_tls_client_signer(
					       o, c.data, c.len, token_sign, &token));
		free(c.data);
	}
	if (alpn) {
		char *copy = strdup(alpn), *save = NULL;
		const char *list[16];
		size_t n = 0;
		for (char *p = strtok_r(copy, ",", &save); p && n < 16; p = strtok_r(NULL, ",", &save))
			list[n++] = p;
		setup("alpn", eq1_mqtt_options_set_tls_alpn(o, list, n));
		free(copy);
	}
	if (server_name)
		setup("server_name", eq1_mqtt_options_set_tls_server_name(o, server_name));
	if (crl_file)
		setup("crl_file", eq1_mqtt_options_set_tls_crl_file(o, crl_file));
	if (crl_data) {
		struct buffer b = read_file(crl_data);
		setup("crl_data", eq1_mqtt_options_set_tls_crl_data(o, b.data, b.len));
		free(b.data);
	}

	eq1_mqtt_client *client = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &client));
	eq1_mqtt_options_free(o);
	eq1_status status = eq1_mqtt_client_connect(client, timeout);
	print_status(status);
	if (status == EQ1_STATUS_OK) {
		int granted = -1;
		CHECK(eq1_mqtt_client_subscribe(client, "tls/roundtrip", 1, on_message, NULL, 10000,
						&granted));
		eq1_token tok = 0;
		CHECK(eq1_mqtt_client_publish(client, "tls/roundtrip", (const uint8_t *)"hi", 2, 1,
					      false, &tok));
		CHECK(eq1_mqtt_client_wait(client, tok, 10000));
		int64_t deadline = now_ms() + 10000;
		while (atomic_load(&received) < 1 && now_ms() < deadline)
			sleep_ms(5);
		if (atomic_load(&received) >= 1)
			printf("ROUNDTRIP ok\n");
		eq1_mqtt_client_disconnect(client, 2000);
	}
	printf("SIGNER calls=%d schemes=%s\n", atomic_load(&token.calls), token.schemes);
	fflush(stdout);
	CHECK(eq1_mqtt_client_free(client));
	EVP_PKEY_free(token.key);
	return 0;
}

/* ---- bad input ------------------------------------------------------------------------- */

static bool refuse_sign(void *user_data, eq1_tls_signature_scheme scheme, const uint8_t *data,
			size_t data_len, uint8_t *signature, size_t signature_capacity,
			size_t *signature_len)
{
	(void)user_data; (void)scheme; (void)data; (void)data_len; (void)signature;
	(void)signature_capacity; (void)signature_len;
	return false;
}

static int badinput_mode(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/ca.crt", dir);
	struct buffer ca = read_file(path);
	snprintf(path, sizeof path, "%s/client.crt", dir);
	struct buffer cert = read_file(path);
	snprintf(path, sizeof path, "%s/client.key", dir);
	struct buffer key = read_file(path);
	snprintf(path, sizeof path, "%s/client_encrypted.key", dir);
	struct buffer enc = read_file(path);
	snprintf(path, sizeof path, "%s/server.key", dir);
	struct buffer other_key = read_file(path);
	snprintf(path, sizeof path, "%s/crl.pem", dir);
	struct buffer crl = read_file(path);
	snprintf(path, sizeof path, "%s/crl.pem", dir);
	const char *crl_path = path;
	static const uint8_t garbage[] = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
	static const uint8_t noise[] = { 0x01, 0x02, 0x03, 0x04 };
	const char *alpn_ok[] = { "mqtt", "x-other" };
	const char *alpn_null[] = { "mqtt", NULL };
	const char *alpn_utf8[] = { BAD_UTF8 };
	const char *alpn_empty[] = { "" };
	char long_id[300];
	memset(long_id, 'a', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	const char *alpn_long[] = { long_id };

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "options_new");

	printf("# before TLS is on\n");
	EXPECT_ERR("client_cert_data(TLS off)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, key.data, key.len, NULL),
		   EQ1_STATUS_INVALID_STATE, "TLS is not enabled");
	EXPECT_ERR("alpn(TLS off)", eq1_mqtt_options_set_tls_alpn(o, alpn_ok, 2),
		   EQ1_STATUS_INVALID_STATE, "TLS is not enabled");
	EXPECT_ERR("server_name(TLS off)", eq1_mqtt_options_set_tls_server_name(o, "a.example"),
		   EQ1_STATUS_INVALID_STATE, "TLS is not enabled");
	EXPECT_ERR("crl_data(TLS off)", eq1_mqtt_options_set_tls_crl_data(o, crl.data, crl.len),
		   EQ1_STATUS_INVALID_STATE, "TLS is not enabled");
	EXPECT_ERR("client_signer(TLS off)", eq1_mqtt_options_set_tls_client_signer(
			   o, cert.data, cert.len, refuse_sign, NULL),
		   EQ1_STATUS_INVALID_STATE, "TLS is not enabled");

	printf("# CA data\n");
	EXPECT_ERR("ca_data(NULL options)", eq1_mqtt_options_set_tls_ca_data(NULL, ca.data, ca.len),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("ca_data(NULL data, len 5)", eq1_mqtt_options_set_tls_ca_data(o, NULL, 5),
		   EQ1_STATUS_NULL_ARGUMENT, "CA data");
	EXPECT_ERR("ca_data(len 0)", eq1_mqtt_options_set_tls_ca_data(o, ca.data, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("ca_data(garbage PEM)",
		   eq1_mqtt_options_set_tls_ca_data(o, garbage, sizeof garbage - 1),
		   EQ1_STATUS_TLS_CONFIG, "base64");
	EXPECT_ERR("ca_data(noise)", eq1_mqtt_options_set_tls_ca_data(o, noise, sizeof noise),
		   EQ1_STATUS_TLS_CONFIG, "neither PEM nor");
	EXPECT_ERR("ca_data(a key, no certificate)",
		   eq1_mqtt_options_set_tls_ca_data(o, key.data, key.len),
		   EQ1_STATUS_TLS_CONFIG, "no certificate");
	EXPECT_ERR("ca_data(truncated PEM)", eq1_mqtt_options_set_tls_ca_data(o, ca.data, ca.len / 2),
		   EQ1_STATUS_TLS_CONFIG, "no end line");
	EXPECT_OK("ca_data(PEM)", eq1_mqtt_options_set_tls_ca_data(o, ca.data, ca.len));

	printf("# client certificate data\n");
	EXPECT_ERR("client_cert_data(NULL options)", eq1_mqtt_options_set_tls_client_cert_data(
			   NULL, cert.data, cert.len, key.data, key.len, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("client_cert_data(NULL cert, len 5)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, NULL, 5, key.data, key.len, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client certificate");
	EXPECT_ERR("client_cert_data(NULL key, len 5)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, NULL, 5, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client key");
	EXPECT_ERR("client_cert_data(cert len 0)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, 0, key.data, key.len, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("client_cert_data(key len 0)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, key.data, 0, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("client_cert_data(garbage cert)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, garbage, sizeof garbage - 1, key.data, key.len, NULL),
		   EQ1_STATUS_TLS_CONFIG, "base64");
	EXPECT_ERR("client_cert_data(garbage key)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, noise, sizeof noise, NULL),
		   EQ1_STATUS_TLS_CONFIG, "private key");
	EXPECT_ERR("client_cert_data(a certificate as key)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, cert.data, cert.len, NULL),
		   EQ1_STATUS_TLS_CONFIG, "no PEM private key");
	EXPECT_ERR("client_cert_data(key of another certificate)",
		   eq1_mqtt_options_set_tls_client_cert_data(o, cert.data, cert.len, other_key.data,
							     other_key.len, NULL),
		   EQ1_STATUS_TLS_CONFIG, "do not fit together");
	EXPECT_ERR("client_cert_data(bad UTF-8 password)", eq1_mqtt_options_set_tls_client_cert_data(
			   o, cert.data, cert.len, enc.data, enc.len, BAD_UTF8),
		   EQ1_STATUS_INVALID_UTF8, "key password");
	EXPECT_ERR("client_cert_data(encrypted, no password)",
		   eq1_mqtt_options_set_tls_client_cert_data(o, cert.data, cert.len, enc.data,
							     enc.len, NULL),
		   EQ1_STATUS_TLS_KEY_PASSWORD, "no password");
	EXPECT_ERR("client_cert_data(encrypted, wrong password)",
		   eq1_mqtt_options_set_tls_client_cert_data(o, cert.data, cert.len, enc.data,
							     enc.len, "wrong"),
		   EQ1_STATUS_TLS_KEY_PASSWORD, "password is wrong");
	EXPECT_OK("client_cert_data(PEM)", eq1_mqtt_options_set_tls_client_cert_data(
			  o, cert.data, cert.len, key.data, key.len, NULL));

	printf("# signer\n");
	EXPECT_ERR("client_signer(NULL options)", eq1_mqtt_options_set_tls_client_signer(
			   NULL, cert.data, cert.len, refuse_sign, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("client_signer(NULL callback)", eq1_mqtt_options_set_tls_client_signer(
			   o, cert.data, cert.len, NULL, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "callback");
	EXPECT_ERR("client_signer(NULL chain, len 5)", eq1_mqtt_options_set_tls_client_signer(
			   o, NULL, 5, refuse_sign, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "certificate chain");
	EXPECT_ERR("client_signer(len 0)", eq1_mqtt_options_set_tls_client_signer(
			   o, cert.data, 0, refuse_sign, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("client_signer(garbage PEM)", eq1_mqtt_options_set_tls_client_signer(
			   o, garbage, sizeof garbage - 1, refuse_sign, NULL),
		   EQ1_STATUS_TLS_CONFIG, "base64");
	EXPECT_OK("client_signer(PEM)", eq1_mqtt_options_set_tls_client_signer(
			  o, cert.data, cert.len, refuse_sign, NULL));

	printf("# ALPN\n");
	EXPECT_ERR("alpn(NULL options)", eq1_mqtt_options_set_tls_alpn(NULL, alpn_ok, 2),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("alpn(NULL list, count 2)", eq1_mqtt_options_set_tls_alpn(o, NULL, 2),
		   EQ1_STATUS_NULL_ARGUMENT, "ALPN");
	EXPECT_ERR("alpn(NULL entry)", eq1_mqtt_options_set_tls_alpn(o, alpn_null, 2),
		   EQ1_STATUS_NULL_ARGUMENT, "ALPN protocol 1");
	EXPECT_ERR("alpn(bad UTF-8)", eq1_mqtt_options_set_tls_alpn(o, alpn_utf8, 1),
		   EQ1_STATUS_INVALID_UTF8, "ALPN protocol 0");
	EXPECT_ERR("alpn(empty id)", eq1_mqtt_options_set_tls_alpn(o, alpn_empty, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..255");
	EXPECT_ERR("alpn(299-byte id)", eq1_mqtt_options_set_tls_alpn(o, alpn_long, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..255");
	EXPECT_ERR("alpn(absurd count)", eq1_mqtt_options_set_tls_alpn(o, alpn_ok, (size_t)-1),
		   EQ1_STATUS_INVALID_ARGUMENT, "cannot fit");
	EXPECT_OK("alpn(two ids)", eq1_mqtt_options_set_tls_alpn(o, alpn_ok, 2));
	EXPECT_OK("alpn(NULL, 0 clears)", eq1_mqtt_options_set_tls_alpn(o, NULL, 0));

	printf("# server name\n");
	EXPECT_ERR("server_name(NULL options)", eq1_mqtt_options_set_tls_server_name(NULL, "a"),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("server_name(bad UTF-8)", eq1_mqtt_options_set_tls_server_name(o, BAD_UTF8),
		   EQ1_STATUS_INVALID_UTF8, "server name");
	EXPECT_ERR("server_name(not a name)", eq1_mqtt_options_set_tls_server_name(o, "a b..c"),
		   EQ1_STATUS_INVALID_ARGUMENT, "not a valid TLS server name");
	EXPECT_OK("server_name(DNS name)", eq1_mqtt_options_set_tls_server_name(o, "broker.example"));
	EXPECT_OK("server_name(IP)", eq1_mqtt_options_set_tls_server_name(o, "127.0.0.1"));
	EXPECT_OK("server_name(NULL resets)", eq1_mqtt_options_set_tls_server_name(o, NULL));

	printf("# CRL\n");
	EXPECT_ERR("crl_file(NULL options)", eq1_mqtt_options_set_tls_crl_file(NULL, crl_path),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("crl_file(NULL path)", eq1_mqtt_options_set_tls_crl_file(o, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "CRL file");
	EXPECT_ERR("crl_file(bad UTF-8)", eq1_mqtt_options_set_tls_crl_file(o, BAD_UTF8),
		   EQ1_STATUS_INVALID_UTF8, "CRL file");
	EXPECT_ERR("crl_file(missing)", eq1_mqtt_options_set_tls_crl_file(o, "/nonexistent/crl.pem"),
		   EQ1_STATUS_TLS_CONFIG, "cannot read CRL file");
	EXPECT_ERR("crl_data(NULL options)", eq1_mqtt_options_set_tls_crl_data(NULL, crl.data, crl.len),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("crl_data(NULL data, len 5)", eq1_mqtt_options_set_tls_crl_data(o, NULL, 5),
		   EQ1_STATUS_NULL_ARGUMENT, "CRL data");
	EXPECT_ERR("crl_data(len 0)", eq1_mqtt_options_set_tls_crl_data(o, crl.data, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("crl_data(garbage PEM)", eq1_mqtt_options_set_tls_crl_data(o, garbage, sizeof garbage - 1),
		   EQ1_STATUS_TLS_CONFIG, "base64");
	EXPECT_ERR("crl_data(a certificate)", eq1_mqtt_options_set_tls_crl_data(o, ca.data, ca.len),
		   EQ1_STATUS_TLS_CONFIG, "no certificate revocation list");
	EXPECT_OK("crl_file(PEM)", eq1_mqtt_options_set_tls_crl_file(o, crl_path));
	EXPECT_OK("crl_data(PEM)", eq1_mqtt_options_set_tls_crl_data(o, crl.data, crl.len));

	eq1_mqtt_options_free(o);
	free(ca.data);
	free(cert.data);
	free(key.data);
	free(enc.data);
	free(other_key.data);
	free(crl.data);
	return tu_summary();
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "connect") == 0)
		return connect_mode(argc - 1, argv + 1);
	if (argc == 3 && strcmp(argv[1], "badinput") == 0)
		return badinput_mode(argv[2]);
	fprintf(stderr, "usage: eq1tls connect [options] | badinput <pki dir>\n");
	return 2;
}
