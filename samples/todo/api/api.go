// Package api is the todo sample's JSON API on PostgreSQL through pgx: the same
// handler runs inside the wasmsrv guest (samples/todo) and, for the benchmark, in
// a native net/http server (bench/todonative).
//
//	GET    /todos           the list, oldest first (?done=true|false filters)
//	GET    /todos/{id}      one
//	POST   /todos           {"title": "..."} → 201 with the new todo
//	POST   /todos/batch     [{"title": "..."}, ...] → 201, all or nothing (one transaction)
//	PATCH  /todos/{id}      {"title": "...", "done": true} (either) → the todo
//	DELETE /todos/{id}      → 204
//
// Errors are JSON {"error": "..."}: 400 for a bad body, 404 for no such todo, and
// 503 with Retry-After while the database cannot be reached, so a client of a
// restarting database gets an answer, not a hang.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Todo is one row of the todos table.
type Todo struct {
	ID        int64     `json:"id"`
	Title     string    `json:"title"`
	Done      bool      `json:"done"`
	CreatedAt time.Time `json:"created_at"`
}

// schema is created at start, under an advisory lock: every instance of the app
// runs it, possibly at once.
const schema = `CREATE TABLE IF NOT EXISTS todos (
	id         bigserial PRIMARY KEY,
	title      text NOT NULL CHECK (title <> ''),
	done       boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now()
)`

const migrateLock = 0x746f646f // "todo"

// Migrate creates the schema if it is missing.
func Migrate(ctx context.Context, db *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
}

// Gate bounds the requests that use the pool at once (a wasmsrv.Semaphore in an
// async guest, as wide as the pool); nil for none.
type Gate interface {
	Acquire()
	Release()
}

// API serves the todos of one database.
type API struct {
	db   *pgxpool.Pool
	gate Gate
	// Ready, when set, runs before each request that uses the database (the
	// guest retries its migration there if the database was down at start).
	Ready func(context.Context) error
}

// New returns the API over db.
func New(db *pgxpool.Pool, gate Gate) *API { return &API{db: db, gate: gate} }

// Handler returns the routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /todos", a.with(a.list))
	mux.HandleFunc("GET /todos/{id}", a.with(a.get))
	mux.HandleFunc("POST /todos", a.with(a.create))
	mux.HandleFunc("POST /todos/batch", a.with(a.batch))
	mux.HandleFunc("PATCH /todos/{id}", a.with(a.update))
	mux.HandleFunc("DELETE /todos/{id}", a.with(a.remove))
	return mux
}

// with runs f holding the gate. The request's context carries no timeout of its
// own: in a guest, Go timers do not run while the instance waits in the host
// (sync shape) or between events (async shape), so a context deadline would not
// stop a blocked query; the request deadline does, on the host (wasmsrv releases a
// read blocked past it); natively the context ends when the client leaves.
func (a *API) with(f func(ctx context.Context, w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.gate != nil {
			a.gate.Acquire()
			defer a.gate.Release()
		}
		ctx := r.Context()
		if a.Ready != nil {
			if err := a.Ready(ctx); err != nil {
				writeErr(w, err)
				return
			}
		}
		if err := f(ctx, w, r); err != nil {
			writeErr(w, err)
		}
	}
}

const columns = "id, title, done, created_at"

func scan(row pgx.Row) (Todo, error) {
	var t Todo
	err := row.Scan(&t.ID, &t.Title, &t.Done, &t.CreatedAt)
	return t, err
}

func (a *API) list(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q, args := "SELECT "+columns+" FROM todos ORDER BY id LIMIT 1000", []any(nil)
	if d := r.URL.Query().Get("done"); d != "" {
		done, err := strconv.ParseBool(d)
		if err != nil {
			return badRequest("done: want true or false")
		}
		q, args = "SELECT "+columns+" FROM todos WHERE done = $1 ORDER BY id LIMIT 1000", []any{done}
	}
	rows, err := a.db.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	todos, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Todo, error) { return scan(row) })
	if err != nil {
		return err
	}
	if todos == nil {
		todos = []Todo{}
	}
	writeJSON(w, http.StatusOK, todos)
	return nil
}

func (a *API) get(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	t, err := scan(a.db.QueryRow(ctx, "SELECT "+columns+" FROM todos WHERE id = $1", id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

type input struct {
	Title *string `json:"title"`
	Done  *bool   `json:"done"`
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: " + err.Error())
	}
	return nil
}

func (in input) check(create bool) error {
	if create && in.Title == nil || in.Title != nil && *in.Title == "" {
		return badRequest("title: want a non-empty string")
	}
	return nil
}

func (a *API) create(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var in input
	if err := decode(r, &in); err != nil {
		return err
	}
	if err := in.check(true); err != nil {
		return err
	}
	t, err := scan(a.db.QueryRow(ctx, "INSERT INTO todos (title, done) VALUES ($1, coalesce($2, false)) RETURNING "+columns, *in.Title, in.Done))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/todos/"+strconv.FormatInt(t.ID, 10))
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// batch inserts several todos in one transaction: a bad one leaves none behind.
func (a *API) batch(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var ins []input
	if err := decode(r, &ins); err != nil {
		return err
	}
	var out []Todo
	err := pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		for i, in := range ins {
			if err := in.check(true); err != nil {
				return badRequest("item " + strconv.Itoa(i) + ": " + err.Error())
			}
			t, err := scan(tx.QueryRow(ctx, "INSERT INTO todos (title, done) VALUES ($1, coalesce($2, false)) RETURNING "+columns, *in.Title, in.Done))
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if out == nil {
		out = []Todo{}
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) update(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in input
	if err := decode(r, &in); err != nil {
		return err
	}
	if err := in.check(false); err != nil {
		return err
	}
	t, err := scan(a.db.QueryRow(ctx, "UPDATE todos SET title = coalesce($2, title), done = coalesce($3, done) WHERE id = $1 RETURNING "+columns, id, in.Title, in.Done))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) remove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	tag, err := a.db.Exec(ctx, "DELETE FROM todos WHERE id = $1", id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("id: want a positive number")
	}
	return id, nil
}

// badRequest is the client's mistake.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// writeErr answers an error: the client's (400), a missing row (404), one the
// database reported (500, or 400 for a violated constraint), and everything else —
// no connection, a broken one, a timeout — as 503: the database is unavailable
// for now, try again.
func writeErr(w http.ResponseWriter, err error) {
	var br badRequest
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &br):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": br.Error()})
	case errors.Is(err, pgx.ErrNoRows):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such todo"})
	case errors.As(err, &pgErr) && pgErr.Code[:2] == "23":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": pgErr.Message})
	case errors.As(err, &pgErr) && pgErr.Code[:2] != "57" && pgErr.Code[:2] != "08":
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": pgErr.Message})
	default:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "database unavailable: " + err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Serve runs n GETs of path through h, with a recorder that keeps nothing, and
// returns the last body: the handler's own cost, without an HTTP server, for
// benchmarks.
func Serve(h http.Handler, path string, n int) (string, error) {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return "", err
	}
	w := &recorder{h: http.Header{}}
	for range n {
		w.code, w.body = 0, w.body[:0]
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			return "", errors.New("status " + strconv.Itoa(w.code) + ": " + string(w.body))
		}
	}
	return string(w.body), nil
}

type recorder struct {
	h    http.Header
	code int
	body []byte
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) { r.code = code }

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body = append(r.body, b...)
	return len(b), nil
}
